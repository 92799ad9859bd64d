/* demo state file: the ports and secrets a demo folder keeps between runs (an INI read with the
 * platform config table). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "agent/demo/demo.h"
#include "platform/config.h"

#define PORT_KEY(i, role, field)                                                                   \
    {                                                                                              \
        .section = "ports", .name = "n" #i "_" role, .type = CFG_INT,                              \
        .offset = offsetof(struct demo_state, port[(i)-1].field), .size = sizeof(long long),       \
        .min = 0, .max = 65535, .def = "0", .help = "port"                                         \
    }
#define NODE_PORTS(i)                                                                              \
    PORT_KEY(i, "etcd_client", etcd_client), PORT_KEY(i, "etcd_peer", etcd_peer),                  \
        PORT_KEY(i, "pg", pg), PORT_KEY(i, "rw", rw), PORT_KEY(i, "ro", ro),                       \
        PORT_KEY(i, "web", web)
#define SECRET_KEY(field)                                                                          \
    {                                                                                              \
        .section = "secrets", .name = #field, .type = CFG_STR,                                     \
        .offset = offsetof(struct demo_state, field),                                              \
        .size = sizeof(((struct demo_state *)NULL)->field), .help = "secret"                       \
    }

static const struct cfg_key state_keys[] = {
    NODE_PORTS(1),
    NODE_PORTS(2),
    NODE_PORTS(3),
    SECRET_KEY(superuser_password),
    SECRET_KEY(replication_password),
    SECRET_KEY(admin_password),
    SECRET_KEY(admin_hash),
};
static const size_t state_nkeys = sizeof(state_keys) / sizeof(state_keys[0]);

int demo_state_load(const char *path, struct demo_state *st)
{
    if (access(path, F_OK) != 0)
        return -ENOENT;
    struct cfg_errors *e = calloc(1, sizeof(*e));
    if (!e) {
        fprintf(stderr, "pgwarden demo: out of memory\n");
        return -ENOMEM;
    }
    int rc = 0;
    if (!cfg_load(state_keys, state_nkeys, st, path, NULL, e)) {
        cfg_errors_print(e, stderr);
        rc = -EINVAL;
    }
    for (size_t i = 0; rc == 0 && i < DEMO_NODES; i++) {
        const struct demo_ports *p = &st->port[i];
        if (!p->etcd_client || !p->etcd_peer || !p->pg || !p->rw || !p->ro || !p->web) {
            fprintf(stderr, "%s: a port of n%zu is missing\n", path, i + 1);
            rc = -EINVAL;
        }
    }
    free(e);
    return rc;
}

int demo_state_save(const char *path, const struct demo_state *st)
{
    char tmp[PGW_PATH_MAX + 8], val[WEB_AUTH_HASH_LINE_MAX + 8];
    if (!demo_path(tmp, sizeof(tmp), "%s.tmp", path))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        int err = errno;
        fprintf(stderr, "pgwarden demo: cannot write %s: %s\n", tmp, strerror(err));
        if (fd >= 0)
            close(fd);
        return -err;
    }
    fprintf(f, "# pgwarden demo: ports and passwords of this demo folder (keep it private)\n");
    const char *section = "";
    for (size_t i = 0; i < state_nkeys; i++) {
        const struct cfg_key *k = &state_keys[i];
        if (strcmp(section, k->section) != 0) {
            section = k->section;
            fprintf(f, "\n[%s]\n", section);
        }
        int n = cfg_format_value(k, st, val, sizeof(val));
        if (n < 0 || (size_t)n >= sizeof(val))
            n = 0, val[0] = '\0';
        fprintf(f, "%s = %s\n", k->name, val);
    }
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    int err = errno;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        err = ok ? errno : err;
        fprintf(stderr, "pgwarden demo: cannot write %s: %s\n", path, strerror(err));
        unlink(tmp);
        return -err;
    }
    return 0;
}

/* DEMO_PW_LEN random letters and digits (rejection sampling: no modulo bias). */
static int random_password(char *out, size_t cap)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const size_t n = sizeof(alphabet) - 1; /* 62 */
    size_t len = 0;
    if (cap <= DEMO_PW_LEN)
        return -EINVAL;
    while (len < DEMO_PW_LEN) {
        unsigned char buf[64];
        if (getrandom(buf, sizeof(buf), 0) != (ssize_t)sizeof(buf)) {
            int err = errno;
            fprintf(stderr, "pgwarden demo: getrandom: %s\n", strerror(err));
            return -err;
        }
        for (size_t i = 0; i < sizeof(buf) && len < DEMO_PW_LEN; i++) {
            if (buf[i] < 248) /* 248 = 4 * 62 */
                out[len++] = alphabet[buf[i] % n];
        }
    }
    out[len] = '\0';
    return 0;
}

int demo_state_new(struct demo_state *st)
{
    memset(st, 0, sizeof(*st));
    int rc = random_password(st->superuser_password, sizeof(st->superuser_password));
    if (rc == 0)
        rc = random_password(st->replication_password, sizeof(st->replication_password));
    if (rc == 0)
        rc = random_password(st->admin_password, sizeof(st->admin_password));
    if (rc == 0) {
        rc = web_auth_hash_password(st->admin_password, WEB_AUTH_ITER_DEFAULT, st->admin_hash,
                                    sizeof(st->admin_hash));
        if (rc < 0)
            fprintf(stderr, "pgwarden demo: cannot hash the admin password: %s\n", strerror(-rc));
    }
    if (rc == 0)
        rc = demo_ports_assign(st, false, NULL);
    return rc;
}
