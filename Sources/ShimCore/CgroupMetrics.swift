import ContainerdAPI
import Runsc

/// runsc's stats (runc's event shape) as containerd's cgroups v1 `Metrics`, the type
/// `ctr task metrics` and CRI decode for a Linux task.
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

    private static func entry(_ entry: RunscStats.MemoryEntry?) -> Io_Containerd_Cgroups_V1_MemoryEntry {
        var result = Io_Containerd_Cgroups_V1_MemoryEntry()
        result.limit = entry?.limit ?? 0
        result.usage = entry?.usage ?? 0
        result.max = entry?.max ?? 0
        result.failcnt = entry?.failcnt ?? 0
        return result
    }
}
