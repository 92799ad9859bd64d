"""Network-namespace topology of the fault suite (issue 9): one namespace per pgwarden node and per
etcd member, each with a veth pair to a private bridge in the root namespace, and the faults that
act on it (partitions, delay between nodes).

Layout (X = a 4-hex-digit run id, so parallel runs never share a name; interface names <= 15):
  bridge   pgwXbr          in the root namespace, 10.A.B.1/24 (the workload and the harness)
  nodes    netns pgw-X-nK  eth0 10.A.B.(10+K)/24, host side veth pgwXnK on the bridge
  etcd     netns pgw-X-eK  eth0 10.A.B.(20+K)/24, host side veth pgwXeK on the bridge
10.A.B.0/24 is picked at random among 10.200.0.0-10.254.255.0 and checked against every IPv4
route of the root namespace. Each etcd member lives in its own namespace (not in a node's): a
node partition then cuts the node off from all three members while etcd keeps its quorum, and
etcd faults stay independent of node faults.

Processes run inside a namespace through `nsenter --net=/run/netns/NS -S uid -G gid --` (nsenter
execs, so the PID the harness holds is the server's own; the agent's PostgreSQL and forwarder
are its children and inherit the namespace).

Partitions (iproute2 only; this kernel has neither nftables/iptables userspace nor tc gact):
  "full"   the host side veth of the node is set down: cut off from everything, the workload too;
  "peers"  blackhole routes in the node's namespace to the other nodes and the etcd members, and
           in theirs back to the node: cut off from etcd and peers, still reachable by clients;
  "etcd"   the same, to and from the etcd members only (the other nodes stay reachable).
With blackhole routes, packets of established connections vanish (TCP retransmits until its
timeouts) and a new connect() fails at once with EINVAL.

Delay between nodes: `tc netem` (prio qdisc, u32 filters on the peers' addresses) when the
kernel has sch_netem/sch_prio; else (as on this machine's kernel: CONFIG_NET_SCH_NETEM unset,
no modules) a userspace relay (delay_relay.py) in each node's namespace delays both directions
of every connection to the node's PostgreSQL connect_address (replication, pg_rewind, peers'
forwarders) by the same amount.

A record of every live topology is kept in /run/pgw-faults/<X>.json with the owner's PID;
Topology.create() first removes the topologies of dead owners (a SIGKILLed run).
"""
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REGISTRY = Path("/run/pgw-faults")
NETNS_DIR = Path("/run/netns")


def sh(*argv, check=True):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))}: rc {r.returncode}: "
                           f"{(r.stderr or r.stdout).strip()[:300]}")
    return r


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _remove(rec):
    """Removes the namespaces and links of one registry record (errors ignored: already gone)."""
    for ns in rec.get("namespaces", []):
        sh("ip", "netns", "del", ns, check=False)
    for link in rec.get("links", []):
        sh("ip", "link", "del", link, check=False)


def cleanup_stale(log=print):
    """Removes the topologies whose owner process is gone; returns their ids."""
    gone = []
    if not REGISTRY.is_dir():
        return gone
    for f in REGISTRY.glob("*.json"):
        try:
            rec = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if _pid_alive(int(rec.get("pid", 0))):
            continue
        log(f"removing the stale fault-suite topology {rec.get('id')} of dead pid {rec.get('pid')}")
        _remove(rec)
        f.unlink(missing_ok=True)
        gone.append(rec.get("id"))
    return gone


def _used_prefixes():
    used = set()
    for line in sh("ip", "-4", "route", "show", "table", "all", check=False).stdout.splitlines():
        tok = line.split()
        for t in tok[:2]:
            if t.count(".") == 3:
                parts = t.split("/")[0].split(".")
                used.add((parts[0], parts[1], parts[2]))
    for line in sh("ip", "-4", "-o", "addr", "show", check=False).stdout.splitlines():
        tok = line.split()
        if "inet" in tok:
            parts = tok[tok.index("inet") + 1].split("/")[0].split(".")
            used.add((parts[0], parts[1], parts[2]))
    return used


class Topology:
    def __init__(self, n_nodes=3, n_etcd=3, log=print):
        self.n_nodes, self.n_etcd, self.log = n_nodes, n_etcd, log
        self.id = None
        self.net = None
        self.namespaces, self.links = [], []
        self.down = set()       # host veths set down by a "full" partition
        self.routes = set()     # (namespace, address) blackhole routes in place
        self.delay = None       # {"ms", "method"} once delay_between_nodes() ran
        self.relays = []        # conftest.Proc of the userspace delay relays

    # ---- names and addresses ----
    def node_ns(self, k):
        return f"pgw-{self.id}-n{k}"

    def etcd_ns(self, k):
        return f"pgw-{self.id}-e{k}"

    def node_ip(self, k):
        return f"{self.net}.{10 + k}"

    def etcd_ip(self, k):
        return f"{self.net}.{20 + k}"

    @property
    def host_ip(self):
        return f"{self.net}.1"

    def prefix(self, ns, uid, gid):
        """argv prefix that runs a command in namespace ns as uid:gid (no supplementary group)."""
        return ["nsenter", f"--net={NETNS_DIR / ns}", "-S", str(uid), "-G", str(gid), "--"]

    # ---- lifecycle ----
    def create(self):
        cleanup_stale(self.log)
        REGISTRY.mkdir(parents=True, exist_ok=True)
        rng = random.SystemRandom()
        existing = set(sh("ip", "netns", "list", check=False).stdout.split())
        while True:
            self.id = f"{rng.randrange(16 ** 4):04x}"
            if not (REGISTRY / f"{self.id}.json").exists() and \
                    not any(n.startswith(f"pgw-{self.id}-") for n in existing):
                break
        used = _used_prefixes()
        for _ in range(1000):
            cand = ("10", str(rng.randrange(200, 255)), str(rng.randrange(0, 256)))
            if cand not in used:
                self.net = ".".join(cand)
                break
        else:
            raise RuntimeError("no free private /24 under 10.200.0.0/16-10.254.0.0/16")
        self._save()
        try:
            br = f"pgw{self.id}br"
            sh("ip", "link", "add", br, "type", "bridge")
            self.links.append(br)
            self._save()
            sh("ip", "addr", "add", f"{self.host_ip}/24", "dev", br)
            sh("ip", "link", "set", br, "up")
            for kind, n, ip_of, ns_of in (("n", self.n_nodes, self.node_ip, self.node_ns),
                                          ("e", self.n_etcd, self.etcd_ip, self.etcd_ns)):
                for k in range(1, n + 1):
                    ns, host = ns_of(k), f"pgw{self.id}{kind}{k}"
                    sh("ip", "netns", "add", ns)
                    self.namespaces.append(ns)
                    self._save()
                    sh("ip", "link", "add", host, "type", "veth", "peer", "name", "eth0",
                       "netns", ns)
                    self.links.append(host)
                    self._save()
                    sh("ip", "link", "set", host, "master", br, "up")
                    sh("ip", "-n", ns, "addr", "add", f"{ip_of(k)}/24", "dev", "eth0")
                    sh("ip", "-n", ns, "link", "set", "eth0", "up")
                    sh("ip", "-n", ns, "link", "set", "lo", "up")
            self._wait_links()
        except BaseException:
            self.destroy()
            raise
        self.log(f"topology {self.id}: {self.net}.0/24, namespaces {', '.join(self.namespaces)}")
        return self

    def _wait_links(self):
        """Until every host veth reports carrier (the bridge forwards a moment later)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = sh("ip", "-o", "link", "show", "master", f"pgw{self.id}br").stdout
            if out.count("LOWER_UP") >= self.n_nodes + self.n_etcd:
                return
            time.sleep(0.1)
        raise RuntimeError(f"veths of topology {self.id} not up after 10 s")

    def _save(self):
        rec = {"id": self.id, "pid": os.getpid(), "net": self.net,
               "namespaces": self.namespaces, "links": self.links}
        (REGISTRY / f"{self.id}.json").write_text(json.dumps(rec))

    def destroy(self):
        """Removes every namespace and link this topology created (idempotent)."""
        for p in self.relays:
            try:
                p.stop()
            except Exception as e:  # keep removing the rest
                self.log(f"relay {p.name}: {e}")
        self.relays = []
        if self.id is None:
            return
        _remove({"namespaces": self.namespaces, "links": self.links})
        left = set(sh("ip", "netns", "list", check=False).stdout.split()) & set(self.namespaces)
        (REGISTRY / f"{self.id}.json").unlink(missing_ok=True)
        if left:
            self.log(f"topology {self.id}: namespaces still listed after removal: {sorted(left)}")
        self.namespaces, self.links = [], []

    # ---- partitions ----
    def _blackhole(self, ns, addr, on):
        key = (ns, addr)
        if on and key not in self.routes:
            sh("ip", "-n", ns, "route", "add", "blackhole", f"{addr}/32")
            self.routes.add(key)
        elif not on and key in self.routes:
            sh("ip", "-n", ns, "route", "del", "blackhole", f"{addr}/32", check=False)
            self.routes.discard(key)

    def partition(self, k, mode):
        """Cuts node k off (mode "full", "peers" or "etcd", see the module docstring)."""
        if mode == "full":
            link = f"pgw{self.id}n{k}"
            sh("ip", "link", "set", link, "down")
            self.down.add(link)
            return
        others = [(self.etcd_ns(j), self.etcd_ip(j)) for j in range(1, self.n_etcd + 1)]
        if mode == "peers":
            others += [(self.node_ns(j), self.node_ip(j)) for j in range(1, self.n_nodes + 1)
                       if j != k]
        elif mode != "etcd":
            raise ValueError(mode)
        for ns, ip in others:
            self._blackhole(self.node_ns(k), ip, True)
            self._blackhole(ns, self.node_ip(k), True)

    def heal(self):
        """Removes every partition in place."""
        for link in sorted(self.down):
            sh("ip", "link", "set", link, "up")
            self.down.discard(link)
        for ns, addr in sorted(self.routes):
            self._blackhole(ns, addr, False)

    # ---- delay between nodes ----
    def try_netem(self, ms):
        """tc netem delay of ms on each node's egress towards the other nodes; False (and
        nothing left behind) if the kernel lacks sch_prio or sch_netem."""
        try:
            for k in range(1, self.n_nodes + 1):
                ns = self.node_ns(k)
                sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root",
                   "handle", "1:", "prio", "bands", "3", "priomap", *(["0"] * 16))
                sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "parent",
                   "1:3", "handle", "30:", "netem", "delay", f"{ms}ms")
                for j in range(1, self.n_nodes + 1):
                    if j != k:
                        sh("ip", "netns", "exec", ns, "tc", "filter", "add", "dev", "eth0",
                           "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match", "ip",
                           "dst", f"{self.node_ip(j)}/32", "flowid", "1:3")
            return True
        except RuntimeError as e:
            self.log(f"tc netem not available ({str(e)[:160]}); using the userspace relay")
            for k in range(1, self.n_nodes + 1):
                sh("ip", "netns", "exec", self.node_ns(k), "tc", "qdisc", "del", "dev", "eth0",
                   "root", check=False)
            return False

    def start_relays(self, ms, listen_port, target_port, uid, gid, log_dir, proc_cls, env):
        """The userspace delay: in node k's namespace, node_ip:listen_port -> node_ip:target_port,
        ms each way."""
        relay = Path(__file__).resolve().with_name("delay_relay.py")
        for k in range(1, self.n_nodes + 1):
            ip = self.node_ip(k)
            argv = self.prefix(self.node_ns(k), uid, gid) + [
                sys.executable, relay, "--listen", f"{ip}:{listen_port}",
                "--target", f"{ip}:{target_port}", "--delay-ms", str(ms)]
            p = proc_cls(f"relay-n{k}", argv, Path(log_dir) / f"relay-n{k}.log", env=env,
                         user=None).start()
            self.relays.append(p)
        deadline = time.monotonic() + 15
        for k, p in enumerate(self.relays, 1):
            while True:
                if not p.running():
                    raise RuntimeError(f"delay relay of n{k} exited: {p.log()[-500:]}")
                if "listening" in p.log():
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"delay relay of n{k} not listening after 15 s")
                time.sleep(0.05)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "cleanup":
        print("removed:", cleanup_stale() or "nothing")
    else:
        sys.exit("usage: netns.py cleanup   (removes topologies of dead fault-suite runs)")
