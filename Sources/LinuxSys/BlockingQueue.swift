import Glibc

/// A FIFO that a dedicated thread blocks on (pthread mutex + condition variable).
/// Producers never block, so async code can hand work to a blocking thread safely.
public final class BlockingQueue<Element>: @unchecked Sendable {
    // Heap-allocated: pthread objects must not move, and Swift may move stored properties.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    // Guarded by `mutex`.
    private var items: [Element] = []
    private var head = 0
    private var isClosed = false

    public init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    /// Appends `item`; returns false (dropping it) once the queue is closed.
    @discardableResult
    public func push(_ item: Element) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard !isClosed else { return false }
        items.append(item)
        pthread_cond_signal(condition)
        return true
    }

    /// Blocks until an item is available. Returns nil once the queue is closed and drained.
    public func pop() -> Element? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while head == items.count && !isClosed {
            pthread_cond_wait(condition, mutex)
        }
        guard head < items.count else { return nil }
        let item = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: items.capacity <= 64)
            head = 0
        }
        return item
    }

    /// Refuses further pushes; items already queued are still delivered.
    public func close() {
        pthread_mutex_lock(mutex)
        isClosed = true
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }
}
