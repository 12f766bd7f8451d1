"""The Kubernetes part of scripts/demo.sh: a private node (containerd's CRI plugin, Warden as the
`warden` handler, crinode.py) runs a pod of two containers in gVisor, the pod's sandbox is
wedged (runsc-sandbox SIGSTOPped: what leaves pods in Terminating), and the operator CLI
(tools/cri/warden_cri.py) stops and removes it within Warden's deadlines."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crinode import ROOT, CRINode  # noqa: E402

CLI = os.path.join(ROOT, "tools", "cri", "warden_cri.py")


def cli(node, *arguments):
    result = subprocess.run([CLI, "--socket", node.socket, "--timeout", "30", *arguments],
                            capture_output=True, text=True, timeout=60)
    for line in (result.stdout + result.stderr).splitlines():
        print("     " + line)
    return result.returncode


node = CRINode()
try:
    node.start()
    print(f"   node: {node.dir}, netns {node.netns}; deadlines: runsc_call_timeout 2s, kill_grace 1s, "
          "stop_deadline 5s, delete_deadline 5s")
    pod_id, containers = node.run_pod("demo", "warden", [("web", ["sleep", "100000"]), ("sidecar", ["sleep", "100000"])])
    reply = node.client.exec_sync(containers[0], ["uname", "-sr"])
    print(f"   RunPodSandbox + 2 containers; ExecSync uname in 'web': {reply.stdout.decode().strip()} (gVisor's kernel)")
    print(f"   shims serving the pod: {len(node.shim_pids_of(pod_id))}")
    print("   $ warden_cri.py pods")
    cli(node, "pods")
    sandbox_pid = node.pid_of(pod_id)
    os.kill(sandbox_pid, signal.SIGSTOP)
    print(f"   runsc-sandbox (pid {sandbox_pid}) SIGSTOPped: the pod is wedged")
    print("   $ warden_cri.py rm -f demo   (StopPodSandbox, then RemovePodSandbox)")
    started = time.monotonic()
    code = cli(node, "rm", "-f", "demo")
    print(f"   exit {code} after {time.monotonic() - started:.2f}s")
    deleted = [line for line in node.cni_log() if line.startswith(f"DEL bridge {pod_id}")]
    print(f"   CNI DEL ran: {'yes' if deleted else 'NO'}")
    left = node.leaks()
    print(f"   left behind (processes, mounts, pod netns, runsc state, CNI addresses, container cgroups): {left or 'nothing'}")
    sys.exit(0 if code == 0 and deleted and not left else 1)
finally:
    node.cleanup()
