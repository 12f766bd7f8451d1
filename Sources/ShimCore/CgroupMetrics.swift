import ContainerdAPI
import Runsc

/// runsc's stats (runc's event shape) as containerd's cgroups `Metrics`, the type `ctr task
/// metrics` and CRI decode for a Linux task: v1 on a host with v1 hierarchies (a hybrid one
/// included, as containerd decides), v2 on a unified-only host.
enum CgroupMetrics {
    static func v1(_ stats: RunscStats) -> Io_Containerd_Cgroups_V1_Metrics {
        var metrics = Io_Containerd_Cgroups_V1_Metrics()
        if let pids = stats.pids {
            metrics.pids.current = pids.current ?? 0
            metrics.pids.limit = pids.limit ?? 0
        }
        if let usage = stats.cpu?.usage {
            metrics.cpu.usage.total = usage.total ?? 0
            metrics.cpu.usage.kernel = usage.kernel ?? 0
            metrics.cpu.usage.user = usage.user ?? 0
            metrics.cpu.usage.perCpu = usage.percpu ?? []
        }
        if let memory = stats.memory {
            metrics.memory.cache = memory.cache ?? 0
            metrics.memory.usage = entry(memory.usage)
            metrics.memory.swap = entry(memory.swap)
            metrics.memory.kernel = entry(memory.kernel)
            if let raw = memory.raw {
                metrics.memory.rss = raw["rss"] ?? 0
                metrics.memory.mappedFile = raw["mapped_file"] ?? 0
                metrics.memory.totalRss = raw["total_rss"] ?? 0
                metrics.memory.totalCache = raw["total_cache"] ?? 0
            }
        }
        return metrics
    }

    /// The same as cgroups v2 `Metrics`, what containerd expects on a host with only the
    /// unified hierarchy (CPU times in microseconds there).
    static func v2(_ stats: RunscStats) -> Io_Containerd_Cgroups_V2_Metrics {
        var metrics = Io_Containerd_Cgroups_V2_Metrics()
        if let pids = stats.pids {
            metrics.pids.current = pids.current ?? 0
            metrics.pids.limit = pids.limit ?? 0
        }
        if let usage = stats.cpu?.usage {
            metrics.cpu.usageUsec = (usage.total ?? 0) / 1000
            metrics.cpu.userUsec = (usage.user ?? 0) / 1000
            metrics.cpu.systemUsec = (usage.kernel ?? 0) / 1000
        }
        if let memory = stats.memory {
            metrics.memory.usage = memory.usage?.usage ?? 0
            metrics.memory.usageLimit = memory.usage?.limit ?? 0
            metrics.memory.swapUsage = memory.swap?.usage ?? 0
            metrics.memory.swapLimit = memory.swap?.limit ?? 0
            metrics.memory.file = memory.cache ?? 0
            metrics.memory.anon = memory.raw?["rss"] ?? 0
        }
        return metrics
    }

    private static func entry(_ entry: RunscStats.MemoryEntry?) -> Io_Containerd_Cgroups_V1_MemoryEntry {
        var result = Io_Containerd_Cgroups_V1_MemoryEntry()
        result.limit = entry?.limit ?? 0
        result.usage = entry?.usage ?? 0
        result.max = entry?.max ?? 0
        result.failcnt = entry?.failcnt ?? 0
        return result
    }
}
