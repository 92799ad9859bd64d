/* demo banner: the URLs, login, DATABASE_URL, etcd endpoints and "try this" lines once ready. */
#include <stdio.h>
#include <string.h>

#include "agent/demo/demo.h"

void demo_print_banner(FILE *out, const struct demo_opts *o, const struct demo_state *st,
                       const struct demo_view *v, const char *exe)
{
    int leader = v->primary >= 0 ? v->primary : 0;
    int other = leader == 0 ? 1 : 0;
    const char *pw = st->superuser_password;

    fprintf(out,
            "\npgwarden demo is running: a primary and %d streaming replicas, %d etcd "
            "members, all on 127.0.0.1.\n\n",
            DEMO_NODES - 1, DEMO_NODES);
    for (int i = 0; i < DEMO_NODES; i++)
        fprintf(out, "  dashboard:     http://127.0.0.1:%lld/ui/   (n%d)\n", st->port[i].web,
                i + 1);
    fprintf(out,
            "  login:         " DEMO_ADMIN_USER " / %s   (also in %s/" DEMO_PASSWORD_FILE ")\n",
            st->admin_password, o->dir);
    fprintf(out, "  DATABASE_URL:  postgres://postgres:%s@127.0.0.1:%lld/postgres\n", pw,
            st->port[0].rw);
    fprintf(out, "  read-only URL: postgres://postgres:%s@127.0.0.1:%lld/postgres\n", pw,
            st->port[0].ro);
    fprintf(out, "  etcd:          ");
    for (int i = 0; i < DEMO_NODES; i++)
        fprintf(out, "%shttp://127.0.0.1:%lld", i ? "," : "", st->port[i].etcd_client);
    fprintf(out, "\n  leader:        n%d\n", leader + 1);
    fprintf(out, "  folder:        %s   (n1.conf..n%d.conf, logs in %s/logs/)\n\n", o->dir,
            DEMO_NODES, o->dir);

    fprintf(out, "Try this in another terminal:\n");
    fprintf(out, "  psql 'postgres://postgres:%s@127.0.0.1:%lld/postgres'\n", pw, st->port[0].rw);
    fprintf(out, "  %s ctl -c %s/n1.conf list\n", exe, o->dir);
    fprintf(out,
            "  %s ctl -c %s/n1.conf --username " DEMO_ADMIN_USER
            " --password-file %s/" DEMO_PASSWORD_FILE " switchover --candidate n%d --force\n",
            exe, o->dir, o->dir, other + 1);
    fprintf(out,
            "  kill -9 $(head -n1 %s/n%d/data/postmaster.pid)   # kill the leader's postmaster: "
            "a replica takes over\n",
            o->dir, leader + 1);
    fprintf(out,
            "\nCtrl-C stops everything; the data stays in %s (run the demo again to resume, "
            "--reset to start over).\n",
            o->dir);
    fprintf(out, "demo: ready\n");
    fflush(out);
}
