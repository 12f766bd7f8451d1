/// Where containerd keeps the bundles of the shims it starts, under its state directory:
/// `<state>/<owner>/<namespace>/<id>`. A task's bundle is the runtime v2 task manager's; a
/// pod's under containerd 2.x's shim sandboxer (`sandboxer = "shim"`) is the sandbox
/// controller's, and its containers' bundles are then the task manager's as usual.
public enum ContainerdBundles {
    public static let taskOwner = "io.containerd.runtime.v2.task"
    public static let sandboxControllerOwner = "io.containerd.sandbox.controller.v1.shim"
    public static let owners = [taskOwner, sandboxControllerOwner]
}
