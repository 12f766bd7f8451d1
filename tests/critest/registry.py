"""critest's images, offline: Debian's docker-registry on the CRI node's loopback (inside the
node's network namespace, so nothing listens among the host's interfaces), the stand-ins from
scripts/build-critest-images.sh pushed to it with skopeo, and containerd's registry hosts
(`config_path`) naming it as the mirror of registry.k8s.io and gcr.io, where critest pulls from.
"""
import os
import signal
import subprocess
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGES = os.path.join(ROOT, "tests", "fixtures", "bin", "critest-images")
ADDRESS = "127.0.0.1:5000"
MIRRORED = ["registry.k8s.io", "gcr.io"]


class OfflineRegistry:
    def __init__(self, directory, netns):
        self.dir = directory
        self.netns = netns
        self.process = None
        os.makedirs(self.dir, exist_ok=True)

    @property
    def hosts_dir(self):
        """containerd's registry config_path."""
        return os.path.join(self.dir, "hosts")

    def start(self, timeout=30):
        config = os.path.join(self.dir, "config.yml")
        with open(config, "w") as file:
            file.write(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                       f"    rootdirectory: {os.path.join(self.dir, 'storage')}\n"
                       f"http:\n  addr: {ADDRESS}\n")
        log = open(os.path.join(self.dir, "registry.log"), "a")
        self.process = subprocess.Popen(["ip", "netns", "exec", self.netns, "docker-registry", "serve", config],
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while self._in_netns(["busybox", "wget", "-q", "-O", "/dev/null", f"http://{ADDRESS}/v2/"]).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not serve on {ADDRESS} in {self.netns}: {self.log_tail()}")
            time.sleep(0.2)
        self._write_hosts()
        return self

    def push_images(self):
        """Every stand-in image, under its upstream repository path; returns their names."""
        listing = os.path.join(IMAGES, "images.txt")
        if not os.path.exists(listing):
            raise RuntimeError(f"no {listing}: run scripts/build-critest-images.sh")
        pushed = []
        with open(listing) as file:
            for line in file:
                archive, repository = line.split()
                result = self._in_netns(["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
                                         f"oci-archive:{os.path.join(IMAGES, archive)}",
                                         f"docker://{ADDRESS}/{repository}"], timeout=120)
                if result.returncode != 0:
                    raise RuntimeError(f"skopeo could not push {archive}: {result.stdout}{result.stderr}")
                pushed.append(repository)
        return pushed

    def _write_hosts(self):
        for registry in MIRRORED:
            os.makedirs(os.path.join(self.hosts_dir, registry), exist_ok=True)
            with open(os.path.join(self.hosts_dir, registry, "hosts.toml"), "w") as file:
                file.write(f'server = "https://{registry}"\n\n[host."http://{ADDRESS}"]\n'
                           '  capabilities = ["pull", "resolve"]\n')

    def _in_netns(self, command, timeout=30):
        return subprocess.run(["ip", "netns", "exec", self.netns, *command], capture_output=True, text=True,
                              timeout=timeout)

    def log_tail(self, lines=20):
        try:
            with open(os.path.join(self.dir, "registry.log")) as file:
                return "".join(file.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None
