/// Where containerd keeps the bundles of the shims it starts, under its state directory:
/// `<state>/<owner>/<namespace>/<id>`. A task's bundle is the runtime v2 task manager's
/// (`io.containerd.runtime.v2.task`); a pod's under containerd 2.x's shim sandboxer
/// (`sandboxer = "shim"`) is the sandbox controller's, and its containers' bundles are then
/// the task manager's as usual.
public enum ContainerdBundles {
    public static let owners = ["io.containerd.runtime.v2.task", "io.containerd.sandbox.controller.v1.shim"]
}
