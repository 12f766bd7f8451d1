#!/usr/bin/python3
"""A small CRI v1 client: Warden's CRI tests drive containerd's CRI plugin with it, and operators
use it on a node to see and clear pods (`pods`, `containers`, `stop`, `rm`) when kubelet is gone
or stuck.

Speaks gRPC over containerd's unix socket with the message subset in runtime_v1_subset.proto
(generated code beside this file: scripts/generate-protos.sh). Needs Debian's python3-grpcio.
Every call has a deadline; a call that misses it raises CRIError naming the call and the
deadline (gRPC's DEADLINE_EXCEEDED is kubelet's `context deadline exceeded`).
"""
import argparse
import datetime
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402  (Debian: python3-grpcio)
import runtime_v1_subset_pb2 as pb  # noqa: E402

DEFAULT_SOCKET = "/run/containerd/containerd.sock"
RUNTIME_SERVICE = "runtime.v1.RuntimeService"
IMAGE_SERVICE = "runtime.v1.ImageService"


class CRIError(Exception):
    """A CRI call failed: which call, the gRPC status, containerd's message, how long it took."""

    def __init__(self, method, code, details, seconds):
        self.method, self.code, self.details, self.seconds = method, code, details, seconds
        super().__init__(f"{method}: {code.name} after {seconds:.2f}s: {details}")

    @property
    def deadline_exceeded(self):
        return self.code == grpc.StatusCode.DEADLINE_EXCEEDED


class CRIClient:
    def __init__(self, socket_path=DEFAULT_SOCKET, timeout=30.0):
        self.socket_path = socket_path
        self.timeout = timeout
        self._channel = grpc.insecure_channel("unix:" + socket_path)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def call(self, method, request, timeout=None, service=RUNTIME_SERVICE):
        """One unary call; the response type is `<method>Response`."""
        response_type = getattr(pb, method + "Response")
        stub = self._channel.unary_unary(
            f"/{service}/{method}",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_type.FromString,
        )
        limit = self.timeout if timeout is None else timeout
        started = time.monotonic()
        try:
            return stub(request, timeout=limit)
        except grpc.RpcError as error:
            raise CRIError(method, error.code(), error.details(), time.monotonic() - started) from None

    # Runtime service, the calls Warden's tests and the CLI use.
    def version(self):
        return self.call("Version", pb.VersionRequest(version="v1"))

    def run_pod(self, config, handler, timeout=None):
        request = pb.RunPodSandboxRequest(config=config, runtime_handler=handler)
        return self.call("RunPodSandbox", request, timeout).pod_sandbox_id

    def stop_pod(self, pod_id, timeout=None):
        self.call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout)

    def remove_pod(self, pod_id, timeout=None):
        self.call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout)

    def pod_status(self, pod_id, verbose=False, timeout=None):
        request = pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=verbose)
        return self.call("PodSandboxStatus", request, timeout)

    def pods(self, timeout=None):
        return list(self.call("ListPodSandbox", pb.ListPodSandboxRequest(), timeout).items)

    def create_container(self, pod_id, config, sandbox_config, timeout=None):
        request = pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=sandbox_config)
        return self.call("CreateContainer", request, timeout).container_id

    def start_container(self, container_id, timeout=None):
        self.call("StartContainer", pb.StartContainerRequest(container_id=container_id), timeout)

    def stop_container(self, container_id, grace_seconds=0, timeout=None):
        request = pb.StopContainerRequest(container_id=container_id, timeout=grace_seconds)
        self.call("StopContainer", request, timeout)

    def remove_container(self, container_id, timeout=None):
        self.call("RemoveContainer", pb.RemoveContainerRequest(container_id=container_id), timeout)

    def containers(self, pod_id="", timeout=None):
        request = pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=pod_id))
        return list(self.call("ListContainers", request, timeout).containers)

    def container_status(self, container_id, verbose=False, timeout=None):
        request = pb.ContainerStatusRequest(container_id=container_id, verbose=verbose)
        return self.call("ContainerStatus", request, timeout)

    def exec_sync(self, container_id, command, seconds=10, timeout=None):
        request = pb.ExecSyncRequest(container_id=container_id, cmd=command, timeout=seconds)
        return self.call("ExecSync", request, seconds + 5 if timeout is None else timeout)

    def update_resources(self, container_id, timeout=None, **linux):
        """UpdateContainerResources (kubelet's in-place resize) with the given Linux resources
        (memory_limit_in_bytes=…, cpu_quota=…, …)."""
        request = pb.UpdateContainerResourcesRequest(
            container_id=container_id, linux=pb.LinuxContainerResources(**linux))
        self.call("UpdateContainerResources", request, timeout)

    def container_stats(self, container_id, timeout=None):
        """ContainerStats (what `kubectl top pod --containers` reads): the stats message."""
        return self.call("ContainerStats", pb.ContainerStatsRequest(container_id=container_id), timeout).stats

    def images(self, timeout=None):
        return list(self.call("ListImages", pb.ListImagesRequest(), timeout, service=IMAGE_SERVICE).images)


def pod_config(name, namespace="default", uid=None, log_directory="", labels=None, cgroup_parent=""):
    """The PodSandboxConfig kubelet would send for a plain pod (pod network, no host namespaces).
    `cgroup_parent` is the pod's cgroup (kubelet's `/kubepods/<qos>/pod<uid>`); its containers'
    cgroups go under it."""
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace=namespace, uid=uid or name + "-uid", attempt=0),
        hostname=name,
        log_directory=log_directory,
        labels=labels or {},
        linux=pb.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent),
    )


def container_config(name, image, command, log_path=""):
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image=image),
        command=command,
        log_path=log_path,
    )


# The operator CLI.

POD_STATES = {pb.SANDBOX_READY: "Ready", pb.SANDBOX_NOTREADY: "NotReady"}
CONTAINER_STATES = {
    pb.CONTAINER_CREATED: "Created", pb.CONTAINER_RUNNING: "Running",
    pb.CONTAINER_EXITED: "Exited", pb.CONTAINER_UNKNOWN: "Unknown",
}


def _age(created_ns):
    seconds = max(0, int(time.time() - created_ns / 1e9))
    return str(datetime.timedelta(seconds=seconds))


def _table(rows):
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def _resolve_pod(client, prefix):
    """A pod id, or a unique prefix of one, or a pod name (as crictl accepts)."""
    matches = [pod.id for pod in client.pods() if pod.id.startswith(prefix) or pod.metadata.name == prefix]
    if len(matches) != 1:
        raise SystemExit(f"warden-cri: {'no pod' if not matches else 'more than one pod'} matches {prefix!r}")
    return matches[0]


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="warden-cri",
        description="See and clear pods through containerd's CRI (for nodes where kubelet is gone or stuck).")
    parser.add_argument("--socket", default=os.environ.get("CONTAINER_RUNTIME_ENDPOINT", DEFAULT_SOCKET).removeprefix("unix://"),
                        help="containerd's socket (default: $CONTAINER_RUNTIME_ENDPOINT or %(default)s)")
    parser.add_argument("--timeout", type=float, default=30.0, help="deadline of each CRI call in seconds (default 30)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("version", help="the runtime's name and version")
    pods_parser = commands.add_parser("pods", help="list pod sandboxes")
    pods_parser.add_argument("--handler", help="only pods of this runtime handler (e.g. warden)")
    containers_parser = commands.add_parser("containers", help="list containers")
    containers_parser.add_argument("pod", nargs="?", default="", help="only this pod's containers")
    stop_parser = commands.add_parser("stop", help="StopPodSandbox: stop every container, tear the network down")
    stop_parser.add_argument("pods", nargs="+")
    rm_parser = commands.add_parser("rm", help="RemovePodSandbox (stops it first when --force)")
    rm_parser.add_argument("--force", "-f", action="store_true", help="stop the pod first")
    rm_parser.add_argument("pods", nargs="+")
    args = parser.parse_args(argv)

    failed = False
    with CRIClient(args.socket, timeout=args.timeout) as client:
        try:
            if args.command == "version":
                version = client.version()
                print(f"{version.runtime_name} {version.runtime_version} (CRI {version.runtime_api_version})")
            elif args.command == "pods":
                rows = [("POD ID", "NAME", "NAMESPACE", "STATE", "HANDLER", "AGE")]
                for pod in sorted(client.pods(), key=lambda pod: pod.created_at):
                    if args.handler and pod.runtime_handler != args.handler:
                        continue
                    rows.append((pod.id[:13], pod.metadata.name, pod.metadata.namespace,
                                 POD_STATES.get(pod.state, pod.state), pod.runtime_handler or "(default)",
                                 _age(pod.created_at)))
                _table(rows)
            elif args.command == "containers":
                pod_id = _resolve_pod(client, args.pod) if args.pod else ""
                rows = [("CONTAINER ID", "NAME", "POD ID", "STATE", "IMAGE", "AGE")]
                for container in sorted(client.containers(pod_id), key=lambda c: c.created_at):
                    rows.append((container.id[:13], container.metadata.name, container.pod_sandbox_id[:13],
                                 CONTAINER_STATES.get(container.state, container.state), container.image.image,
                                 _age(container.created_at)))
                _table(rows)
            else:
                for name in args.pods:
                    pod_id = _resolve_pod(client, name)
                    started = time.monotonic()
                    try:
                        if args.command == "stop" or args.force:
                            client.stop_pod(pod_id)
                        if args.command == "rm":
                            client.remove_pod(pod_id)
                        verb = "stopped" if args.command == "stop" else "removed"
                        print(f"{pod_id[:13]} {verb} in {time.monotonic() - started:.2f}s")
                    except CRIError as error:
                        print(f"warden-cri: {pod_id[:13]}: {error}", file=sys.stderr)
                        failed = True
        except CRIError as error:
            print(f"warden-cri: {error}", file=sys.stderr)
            return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
