"""pgwarden nodes and etcd members of the fault suite (issue 9) inside the network namespaces of
netns.Topology: each server is started as root through `nsenter --net=... -S uid -G gid`, which
enters the namespace, drops to postgres and execs (the PID held is the server's own), and listens
on its namespace's address on fixed ports (nothing else lives there)."""
import shutil
import time

import conftest as C
import ha_figures as H

PG_PORT, RELAY_PORT, RW_PORT, RO_PORT, WEB_PORT = 5432, 5433, 6432, 6433, 8008


class NsNode(C.Node):
    """A conftest.Node whose `pgwarden run` starts inside a namespace through nsenter (started
    as root, nsenter drops to postgres before exec: the held PID is the agent's)."""
    ns_prefix = ()

    def start(self, write_config=True):
        if write_config:
            self.write_config()
        self.proc = C.Proc(f"pgwarden-{self.name}", [*self.ns_prefix, *self.argv()],
                           self.stderr_path, env=self.env, cwd=self.dir, user=None).start()
        self.started_at = time.monotonic()
        self.seen.add(self.proc.ident)
        return self


class NsEtcdMember(C.EtcdMember):
    def __init__(self, base_dir, name, ip, prefix, initial, token):
        super().__init__(base_dir, name, 2379, 2380, initial, cluster_token=token)
        self.ip, self.prefix = ip, prefix

    @property
    def url(self):
        return f"http://{self.ip}:{self.client_port}"

    @property
    def peer_url(self):
        return f"http://{self.ip}:{self.peer_port}"

    def start(self):
        env = C.base_env({"ETCD_UNSUPPORTED_ARCH": C._etcd_goarch()})
        self.proc = C.Proc(f"etcd-{self.name}", [*self.prefix, *self.argv()],
                           self.base_dir / f"{self.name}.log", env=env, cwd=self.base_dir,
                           user=None).start()
        return self


class NsEtcdCluster(C.EtcdCluster):
    """Member eK in namespace pgw-X-eK on its own address (fixed ports: nothing else there)."""

    def __init__(self, base_dir, topo):
        super().__init__(base_dir, topo.n_etcd)
        self.topo = topo

    def start(self, attempts=1, timeout=45):
        t = self.topo
        names = [f"e{i + 1}" for i in range(self.n)]
        initial = ",".join(f"{nm}=http://{t.etcd_ip(i + 1)}:2380" for i, nm in enumerate(names))
        token = f"pgw-faults-{t.id}"
        self.members = [NsEtcdMember(self.base_dir, nm, t.etcd_ip(i + 1),
                                     t.prefix(t.etcd_ns(i + 1), C.RUN_UID, C.RUN_GID), initial,
                                     token) for i, nm in enumerate(names)]
        for m in self.members:
            shutil.rmtree(m.data_dir, ignore_errors=True)
            m.start()
        for m in self.members:
            m.wait_ready(timeout)
        return self


class NsCluster(H.Cluster):
    """H.Cluster whose node nK runs in namespace pgw-X-nK, every listener on the node's address:
    PostgreSQL :5432 (connect_address :5433, the delay relay, when the relay delays), forwarder
    rw :6432 / ro :6433, web :8008."""

    def __init__(self, *a, topo, relay, **kw):
        super().__init__(*a, **kw)
        self.topo, self.relay = topo, relay

    def _make_node(self, name):
        k = int(name[1:])
        ip = self.topo.node_ip(k)
        node_dir = C.make_dir(self.base / name, 0o755)
        C.make_dir(node_dir / "state")
        C.make_dir(node_dir / "pgdata")
        cfg = C.merge_config(C.default_node_config(node_dir, name, self.etcd.url, self.scope),
                             self.ha)
        cfg["postgresql"]["listen"] = f"{ip}:{PG_PORT}"
        if self.relay:
            cfg["postgresql"]["connect_address"] = f"{ip}:{RELAY_PORT}"
        cfg["proxy"].update({"rw_listen": f"{ip}:{RW_PORT}", "ro_listen": f"{ip}:{RO_PORT}"})
        cfg["web"]["listen"] = f"{ip}:{WEB_PORT}"
        node = NsNode(H.Factory(), name, node_dir, cfg, [str(self.bin)], None)
        node.ns_prefix = self.topo.prefix(self.topo.node_ns(k), C.RUN_UID, C.RUN_GID)
        node.start()
        node.wait_ready(60)
        return node


def rw_address(node):
    h, p = node.config["proxy"]["rw_listen"].rsplit(":", 1)
    return h, int(p)
