// The shim server's global executor for Swift concurrency: every job of every task, and
// the shim's own timers (Timers.sleep, which Deadlines uses), run here instead of on
// libdispatch's pool (the runtime's hooks, swift_task_enqueueGlobal*_hook). Task.sleep itself
// does not reach the hooks in Swift 6.3 (it schedules on libdispatch directly), hence the
// timers of clinux_timer_schedule, which can also be cancelled for real: a cancelled
// deadline leaves nothing to fire later. libdispatch keeps a one-second timer running for
// the life of a process once any of its worker threads has run (its workqueue monitor), so
// an idle shim woke every second; here an idle shim sleeps until something happens.
//
// Workers: `base` of them start with the executor and stay; each waits on a condition
// variable with no timeout. A monitor thread keeps the timers (Task.sleep and the deadlines
// built on it) and guards liveness: while jobs wait and no worker has finished one for
// STALL_NS (every worker blocked, e.g. in a bounded poll), it adds a worker, up to `max`;
// added workers leave after SPARE_IDLE_NS idle. The monitor waits with a timeout only while
// a timer is pending or jobs wait on busy workers: idle, it sleeps for good.
#define _GNU_SOURCE
#include "clinuxsys.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SWIFTCALL __attribute__((swiftcall))

// The runtime's SerialExecutorRef, passed by value; {0, 0} is the generic executor.
typedef struct {
    void *identity;
    uintptr_t implementation;
} executor_ref;

typedef SWIFTCALL void (*enqueue_original)(void *job);
typedef SWIFTCALL void (*delay_original)(unsigned long long delay, void *job);
typedef SWIFTCALL void (*deadline_original)(long long sec, long long nsec, long long tsec, long long tnsec, int clock,
                                            void *job);

extern SWIFTCALL void (*swift_task_enqueueGlobal_hook)(void *job, enqueue_original original);
extern SWIFTCALL void (*swift_task_enqueueGlobalWithDelay_hook)(unsigned long long delay, void *job,
                                                                  delay_original original);
extern SWIFTCALL void (*swift_task_enqueueGlobalWithDeadline_hook)(long long sec, long long nsec, long long tsec,
                                                                     long long tnsec, int clock, void *job,
                                                                     deadline_original original);
extern SWIFTCALL void swift_job_run(void *job, executor_ref executor);
extern SWIFTCALL void swift_get_time(long long *seconds, long long *nanoseconds, int clock);

#define STALL_NS (50 * 1000000LL)
#define SPARE_IDLE_NS (5 * 1000000000LL)

struct job_node {
    void *job;  // a job, or NULL for a callback timer
    void (*callback)(void *);
    void *context;
    unsigned long long id;  // callback timers: for clinux_timer_cancel
    long long due;          // CLOCK_MONOTONIC ns (timers only)
    struct job_node *next;
};

struct executor {
    pthread_mutex_t lock;
    pthread_cond_t work;     // workers wait here
    pthread_cond_t monitor;  // the monitor waits here
    struct job_node *ready_head, *ready_tail;
    struct job_node *timers;  // sorted by due
    int base, max;
    int threads, idle;
    int signalled;  // wakeups sent to idle workers and not yet taken
    unsigned long long finished;  // jobs run to completion: the monitor's sign of progress
    long long stalled_since;      // when jobs were first seen waiting with no progress, or 0
    unsigned long long finished_then;
    unsigned long long next_timer_id;
    int installed;
};

// The one executor of the process: the hooks are process-wide, so is this.
static struct executor executor = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
};

static long long monotonic_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

static struct timespec as_timespec(long long ns) {
    struct timespec ts = {.tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL};
    return ts;
}

static void *worker_main(void *spare);

// Called with the lock held. Thread creation failing is survivable: the monitor tries again
// at the next stall.
static void start_worker(int spare) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    if (pthread_create(&thread, &attr, worker_main, (void *)(intptr_t)spare) == 0) executor.threads++;
    pthread_attr_destroy(&attr);
}

static void push_ready(struct job_node *node) {
    node->next = NULL;
    if (executor.ready_tail) executor.ready_tail->next = node;
    else executor.ready_head = node;
    executor.ready_tail = node;
}

// A job is ready: an idle worker not yet woken takes it; with none, the monitor watches
// for a stall.
static void wake_for_ready(void) {
    if (executor.idle > executor.signalled) {
        executor.signalled++;
        pthread_cond_signal(&executor.work);
    } else {
        pthread_cond_signal(&executor.monitor);
    }
}

static void *worker_main(void *spare_arg) {
    int spare = (int)(intptr_t)spare_arg;
    pthread_setname_np(pthread_self(), "worker");
    pthread_mutex_lock(&executor.lock);
    for (;;) {
        while (executor.ready_head == NULL) {
            executor.idle++;
            int rc = 0;
            if (spare) {
                struct timespec until = as_timespec(monotonic_now() + SPARE_IDLE_NS);
                rc = pthread_cond_timedwait(&executor.work, &executor.lock, &until);
            } else {
                pthread_cond_wait(&executor.work, &executor.lock);
            }
            executor.idle--;
            if (executor.signalled > 0) executor.signalled--;
            if (rc == ETIMEDOUT && executor.ready_head == NULL) {
                executor.threads--;
                pthread_mutex_unlock(&executor.lock);
                return NULL;
            }
        }
        struct job_node *node = executor.ready_head;
        executor.ready_head = node->next;
        if (executor.ready_head == NULL) executor.ready_tail = NULL;
        pthread_mutex_unlock(&executor.lock);
        void *job = node->job;
        free(node);
        swift_job_run(job, (executor_ref){NULL, 0});
        pthread_mutex_lock(&executor.lock);
        executor.finished++;
    }
}

static void monitor_main(void *unused) {
    (void)unused;
    pthread_setname_np(pthread_self(), "executor");
    pthread_mutex_lock(&executor.lock);
    for (;;) {
        long long now = monotonic_now();
        struct job_node *callbacks = NULL;
        while (executor.timers && executor.timers->due <= now) {
            struct job_node *due = executor.timers;
            executor.timers = due->next;
            if (due->job) {
                push_ready(due);
                wake_for_ready();
            } else {
                due->next = callbacks;
                callbacks = due;
            }
        }
        if (callbacks) {
            // Outside the lock: a callback resumes a continuation, which enqueues a job here.
            pthread_mutex_unlock(&executor.lock);
            while (callbacks) {
                struct job_node *next = callbacks->next;
                callbacks->callback(callbacks->context);
                free(callbacks);
                callbacks = next;
            }
            pthread_mutex_lock(&executor.lock);
            continue;
        }
        long long wake_at = executor.timers ? executor.timers->due : 0;
        if (executor.ready_head && executor.idle <= executor.signalled && executor.threads < executor.max) {
            if (executor.stalled_since == 0 || executor.finished != executor.finished_then) {
                executor.stalled_since = now;
                executor.finished_then = executor.finished;
            } else if (now - executor.stalled_since >= STALL_NS) {
                start_worker(1);
                executor.stalled_since = 0;
                continue;
            }
            long long check = executor.stalled_since + STALL_NS;
            if (wake_at == 0 || check < wake_at) wake_at = check;
        } else {
            executor.stalled_since = 0;
        }
        if (wake_at == 0) {
            pthread_cond_wait(&executor.monitor, &executor.lock);
        } else {
            struct timespec until = as_timespec(wake_at);
            pthread_cond_timedwait(&executor.monitor, &executor.lock, &until);
        }
    }
}

// No timer is further out than this (about 100 years): monotonic_now() + delay must not
// overflow for the "never" delays the runtime may pass (UINT64_MAX clamped to INT64_MAX).
#define CLINUX_TIMER_HORIZON_NS (100LL * 365 * 24 * 3600 * 1000000000LL)

// Called with the lock held.
static void insert_timer(struct job_node *node, long long delay_ns) {
    if (delay_ns > CLINUX_TIMER_HORIZON_NS) delay_ns = CLINUX_TIMER_HORIZON_NS;
    node->due = monotonic_now() + delay_ns;
    struct job_node **slot = &executor.timers;
    while (*slot && (*slot)->due <= node->due) slot = &(*slot)->next;
    node->next = *slot;
    *slot = node;
    if (executor.timers == node) pthread_cond_signal(&executor.monitor);
}

static void enqueue_after(long long delay_ns, void *job) {
    struct job_node *node = calloc(1, sizeof(*node));
    if (node == NULL) abort();  // the runtime cannot drop a job
    node->job = job;
    pthread_mutex_lock(&executor.lock);
    if (delay_ns <= 0) {
        push_ready(node);
        wake_for_ready();
    } else {
        insert_timer(node, delay_ns);
    }
    pthread_mutex_unlock(&executor.lock);
}

unsigned long long clinux_timer_schedule(long long delay_ns, void (*callback)(void *), void *context) {
    struct job_node *node = calloc(1, sizeof(*node));
    if (node == NULL) return 0;
    node->callback = callback;
    node->context = context;
    pthread_mutex_lock(&executor.lock);
    if (!executor.installed) {
        pthread_mutex_unlock(&executor.lock);
        free(node);
        return 0;
    }
    node->id = ++executor.next_timer_id;
    insert_timer(node, delay_ns < 0 ? 0 : delay_ns);
    unsigned long long id = node->id;
    pthread_mutex_unlock(&executor.lock);
    return id;
}

int clinux_timer_cancel(unsigned long long id) {
    pthread_mutex_lock(&executor.lock);
    for (struct job_node **slot = &executor.timers; *slot; slot = &(*slot)->next) {
        if ((*slot)->job == NULL && (*slot)->id == id) {
            struct job_node *node = *slot;
            // The monitor waits for the earliest timer: told now, it does not wake for
            // this one later.
            if (slot == &executor.timers) pthread_cond_signal(&executor.monitor);
            *slot = node->next;
            pthread_mutex_unlock(&executor.lock);
            free(node);
            return 1;
        }
    }
    pthread_mutex_unlock(&executor.lock);
    return 0;
}

int clinux_executor_installed(void) {
    pthread_mutex_lock(&executor.lock);
    int installed = executor.installed;
    pthread_mutex_unlock(&executor.lock);
    return installed;
}

static SWIFTCALL void hook_enqueue(void *job, enqueue_original original) {
    (void)original;
    enqueue_after(0, job);
}

static SWIFTCALL void hook_enqueue_with_delay(unsigned long long delay, void *job, delay_original original) {
    (void)original;
    enqueue_after(delay > (unsigned long long)INT64_MAX ? INT64_MAX : (long long)delay, job);
}

static SWIFTCALL void hook_enqueue_with_deadline(long long sec, long long nsec, long long tsec, long long tnsec,
                                                 int clock, void *job, deadline_original original) {
    (void)tsec, (void)tnsec, (void)original;
    long long now_sec = 0, now_nsec = 0;
    swift_get_time(&now_sec, &now_nsec, clock);  // the deadline's own clock
    // A deadline seconds away beyond the horizon would overflow the multiplication.
    long long seconds = sec - now_sec;
    long long delay = seconds > CLINUX_TIMER_HORIZON_NS / 1000000000LL ? CLINUX_TIMER_HORIZON_NS
                                                                        : seconds * 1000000000LL + (nsec - now_nsec);
    enqueue_after(delay, job);
}

int clinux_executor_install(int base, int max) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&executor.work, &attr);
    pthread_cond_init(&executor.monitor, &attr);
    pthread_condattr_destroy(&attr);
    executor.base = base < 1 ? 1 : base;
    executor.max = max < executor.base ? executor.base : max;
    if (clinux_spawn_detached_thread(monitor_main, NULL) != 0) return -1;
    pthread_mutex_lock(&executor.lock);
    for (int i = 0; i < executor.base; i++) start_worker(0);
    int started = executor.threads;
    pthread_mutex_unlock(&executor.lock);
    if (started == 0) {
        errno = EAGAIN;
        return -1;
    }
    pthread_mutex_lock(&executor.lock);
    executor.installed = 1;
    pthread_mutex_unlock(&executor.lock);
    swift_task_enqueueGlobal_hook = hook_enqueue;
    swift_task_enqueueGlobalWithDelay_hook = hook_enqueue_with_delay;
    swift_task_enqueueGlobalWithDeadline_hook = hook_enqueue_with_deadline;
    return 0;
}

void clinux_executor_counts(int *threads, int *idle, int *timers) {
    pthread_mutex_lock(&executor.lock);
    *threads = executor.threads;
    *idle = executor.idle;
    int count = 0;
    for (struct job_node *t = executor.timers; t; t = t->next) count++;
    *timers = count;
    pthread_mutex_unlock(&executor.lock);
}
