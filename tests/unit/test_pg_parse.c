/* Unit tests for agent/pg parsing: LSNs, pg_controldata, timeline history, divergence, pid file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "agent/pg/pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- LSNs ---- */

static void test_lsn_round_trip(void **state)
{
    (void)state;
    static const char *const good[] = {"0/0",       "16/B374D848", "FFFFFFFF/FFFFFFFF",
                                       "0/1752A28", "1/0",         "ABCDEF01/1"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t v;
        char buf[PG_LSN_STRLEN];
        assert_int_equal(pg_lsn_parse(good[i], &v), 0);
        assert_string_equal(pg_lsn_format(v, buf, sizeof(buf)), good[i]);
        uint64_t again;
        assert_int_equal(pg_lsn_parse(buf, &again), 0);
        assert_true(again == v);
    }
    uint64_t v;
    assert_int_equal(pg_lsn_parse("16/b374d848", &v), 0);
    assert_true(v == 0x16B374D848ULL);
    assert_int_equal(pg_lsn_parse("0/01752A28", &v), 0); /* pg_waldump's %08X form */
    assert_true(v == 0x1752A28ULL);
    char buf[PG_LSN_STRLEN];
    assert_string_equal(pg_lsn_format(UINT64_MAX, buf, sizeof(buf)), "FFFFFFFF/FFFFFFFF");
    static const char *const bad[] = {"",     "1",    "/1",   "1/",   "123456789/0", "G/0",
                                      "1/2x", "1//2", " 1/2", "1/2 ", "-1/2",        "1/123456789"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pg_lsn_parse(bad[i], &v), -EINVAL);
    assert_int_equal(pg_lsn_parse(NULL, &v), -EINVAL);
}

/* ---- pg_controldata (real output of PostgreSQL 15, LC_ALL=C) ---- */

static const char controldata_primary[] =
    "pg_control version number:            1300\n"
    "Catalog version number:               202209061\n"
    "Database system identifier:           7712296063697319183\n"
    "Database cluster state:               shut down\n"
    "pg_control last modified:             Thu Nov 26 02:07:37 2026\n"
    "Latest checkpoint location:           0/1752A28\n"
    "Latest checkpoint's REDO location:    0/1752A28\n"
    "Latest checkpoint's REDO WAL file:    000000010000000000000001\n"
    "Latest checkpoint's TimeLineID:       1\n"
    "Latest checkpoint's PrevTimeLineID:   1\n"
    "Latest checkpoint's full_page_writes: on\n"
    "Latest checkpoint's NextXID:          0:724\n"
    "Latest checkpoint's NextOID:          13573\n"
    "Latest checkpoint's NextMultiXactId:  1\n"
    "Latest checkpoint's NextMultiOffset:  0\n"
    "Latest checkpoint's oldestXID:        716\n"
    "Latest checkpoint's oldestXID's DB:   1\n"
    "Latest checkpoint's oldestActiveXID:  0\n"
    "Latest checkpoint's oldestMultiXid:   1\n"
    "Latest checkpoint's oldestMulti's DB: 1\n"
    "Latest checkpoint's oldestCommitTsXid:0\n"
    "Latest checkpoint's newestCommitTsXid:0\n"
    "Time of latest checkpoint:            Thu Nov 26 02:07:37 2026\n"
    "Fake LSN counter for unlogged rels:   0/3E8\n"
    "Minimum recovery ending location:     0/0\n"
    "Min recovery ending loc's timeline:   0\n"
    "Backup start location:                0/0\n"
    "Backup end location:                  0/0\n"
    "End-of-backup record required:        no\n"
    "wal_level setting:                    replica\n"
    "wal_log_hints setting:                off\n"
    "max_connections setting:              100\n"
    "max_worker_processes setting:         8\n"
    "max_wal_senders setting:              10\n"
    "max_prepared_xacts setting:           0\n"
    "max_locks_per_xact setting:           64\n"
    "track_commit_timestamp setting:       off\n"
    "Maximum data alignment:               8\n"
    "Database block size:                  8192\n"
    "Blocks per segment of large relation: 131072\n"
    "WAL block size:                       8192\n"
    "Bytes per WAL segment:                16777216\n"
    "Maximum length of identifiers:        64\n"
    "Maximum columns in an index:          32\n"
    "Maximum size of a TOAST chunk:        1996\n"
    "Size of a large-object chunk:         2048\n"
    "Date/time type storage:               64-bit integers\n"
    "Float8 argument passing:              by value\n"
    "Data page checksum version:           1\n"
    "Mock authentication nonce:            "
    "8105081d60e55a7931e68a0fc975a0c31c288618d48bca101d1e709898a2f6a5\n";

static const char controldata_standby[] =
    "pg_control version number:            1300\n"
    "Catalog version number:               202209061\n"
    "Database system identifier:           7712298376487519379\n"
    "Database cluster state:               shut down in recovery\n"
    "pg_control last modified:             Thu Nov 26 02:17:34 2026\n"
    "Latest checkpoint location:           0/3018180\n"
    "Latest checkpoint's REDO location:    0/3018148\n"
    "Latest checkpoint's REDO WAL file:    000000020000000000000003\n"
    "Latest checkpoint's TimeLineID:       2\n"
    "Latest checkpoint's PrevTimeLineID:   2\n"
    "Latest checkpoint's full_page_writes: on\n"
    "Latest checkpoint's NextXID:          0:728\n"
    "Latest checkpoint's NextOID:          24576\n"
    "Latest checkpoint's NextMultiXactId:  1\n"
    "Latest checkpoint's NextMultiOffset:  0\n"
    "Latest checkpoint's oldestXID:        717\n"
    "Latest checkpoint's oldestXID's DB:   1\n"
    "Latest checkpoint's oldestActiveXID:  728\n"
    "Latest checkpoint's oldestMultiXid:   1\n"
    "Latest checkpoint's oldestMulti's DB: 1\n"
    "Latest checkpoint's oldestCommitTsXid:0\n"
    "Latest checkpoint's newestCommitTsXid:0\n"
    "Time of latest checkpoint:            Thu Nov 26 02:16:45 2026\n"
    "Fake LSN counter for unlogged rels:   0/3E8\n"
    "Minimum recovery ending location:     0/301A358\n"
    "Min recovery ending loc's timeline:   2\n"
    "Backup start location:                0/0\n"
    "Backup end location:                  0/0\n"
    "End-of-backup record required:        no\n"
    "wal_level setting:                    replica\n"
    "wal_log_hints setting:                on\n"
    "max_connections setting:              30\n"
    "max_worker_processes setting:         8\n"
    "max_wal_senders setting:              10\n"
    "max_prepared_xacts setting:           0\n"
    "max_locks_per_xact setting:           64\n"
    "track_commit_timestamp setting:       off\n"
    "Maximum data alignment:               8\n"
    "Database block size:                  8192\n"
    "Blocks per segment of large relation: 131072\n"
    "WAL block size:                       8192\n"
    "Bytes per WAL segment:                16777216\n"
    "Maximum length of identifiers:        64\n"
    "Maximum columns in an index:          32\n"
    "Maximum size of a TOAST chunk:        1996\n"
    "Size of a large-object chunk:         2048\n"
    "Date/time type storage:               64-bit integers\n"
    "Float8 argument passing:              by value\n"
    "Data page checksum version:           1\n"
    "Mock authentication nonce:            "
    "1b866320f8d9302243d45212b9f14d9295bcd07be242c53579a7bd0bff951b5e\n";

static void test_controldata_primary(void **state)
{
    (void)state;
    struct pg_controldata cd;
    assert_int_equal(pg_controldata_parse(controldata_primary, &cd), 0);
    assert_true(cd.system_id == 7712296063697319183ULL);
    assert_int_equal(cd.state, PG_STATE_SHUT_DOWN);
    assert_true(cd.checkpoint_lsn == 0x1752A28);
    assert_true(cd.redo_lsn == 0x1752A28);
    assert_int_equal(cd.timeline, 1);
    assert_int_equal(cd.prev_timeline, 1);
    assert_true(cd.min_recovery_lsn == 0);
    assert_int_equal(cd.min_recovery_tli, 0);
    assert_false(cd.wal_log_hints);
    assert_int_equal(cd.checksum_version, 1);
    assert_string_equal(pg_cluster_state_name(cd.state), "shut down");
}

static void test_controldata_standby(void **state)
{
    (void)state;
    struct pg_controldata cd;
    assert_int_equal(pg_controldata_parse(controldata_standby, &cd), 0);
    assert_int_equal(cd.state, PG_STATE_SHUT_DOWN_IN_RECOVERY);
    assert_int_equal(cd.timeline, 2);
    assert_true(cd.checkpoint_lsn == 0x3018180);
    assert_true(cd.min_recovery_lsn == 0x301A358);
    assert_int_equal(cd.min_recovery_tli, 2);
    assert_true(cd.wal_log_hints);
}

static void test_controldata_states_and_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        enum pg_cluster_state s;
    } states[] = {{"starting up", PG_STATE_STARTING_UP},
                  {"shutting down", PG_STATE_SHUTTING_DOWN},
                  {"in crash recovery", PG_STATE_IN_CRASH_RECOVERY},
                  {"in archive recovery", PG_STATE_IN_ARCHIVE_RECOVERY},
                  {"in production", PG_STATE_IN_PRODUCTION},
                  {"unrecognized status code", PG_STATE_UNKNOWN}};
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text),
                 "Database system identifier:           42\n"
                 "Database cluster state:               %s\n"
                 "Latest checkpoint location:           0/10\n"
                 "Latest checkpoint's REDO location:    0/8\n"
                 "Latest checkpoint's TimeLineID:       3\n",
                 states[i].text);
        struct pg_controldata cd;
        assert_int_equal(pg_controldata_parse(text, &cd), 0);
        assert_int_equal(cd.state, states[i].s);
        assert_true(cd.system_id == 42);
        assert_int_equal(cd.timeline, 3);
    }
    struct pg_controldata cd;
    /* A required line missing, a malformed value, nothing at all. */
    assert_int_equal(pg_controldata_parse("Database system identifier: 42\n"
                                          "Database cluster state: in production\n"
                                          "Latest checkpoint location: 0/10\n"
                                          "Latest checkpoint's TimeLineID: 3\n",
                                          &cd),
                     -EBADMSG);
    assert_int_equal(pg_controldata_parse("Database system identifier: x42\n"
                                          "Database cluster state: in production\n"
                                          "Latest checkpoint location: 0/10\n"
                                          "Latest checkpoint's REDO location: 0/8\n"
                                          "Latest checkpoint's TimeLineID: 3\n",
                                          &cd),
                     -EBADMSG);
    assert_int_equal(pg_controldata_parse("", &cd), -EBADMSG);
    assert_int_equal(pg_controldata_parse("pg_controldata: fatal: could not open file\n", &cd),
                     -EBADMSG);
}

/* ---- pg_waldump: where the shutdown checkpoint ends ---- */

static const char waldump_last[] =
    "rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: 0/01752A28, prev "
    "0/017529B0, desc: CHECKPOINT_SHUTDOWN redo 0/1752A28; tli 1; prev tli 1; fpw true; xid "
    "0:724; oid 13573; multi 1; offset 0; oldest xid 716 in DB 1; oldest multi 1 in DB 1; "
    "oldest/newest commit timestamp xid: 0/0; oldest running xid 0; shutdown\n"
    "pg_waldump: error: error in WAL record at 0/1752A28: invalid record length at 0/1752AA0: "
    "wanted 24, got 0\n";

static const char waldump_two[] =
    "rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: 0/0301A390, prev "
    "0/0301A358, desc: CHECKPOINT_ONLINE redo 0/301A358; tli 2; prev tli 2; fpw true; xid "
    "0:729; oid 24576; multi 1; offset 0; oldest xid 717 in DB 1; oldest multi 1 in DB 1; "
    "oldest/newest commit timestamp xid: 0/0; oldest running xid 729; online\n"
    "rmgr: Heap        len (rec/tot):     54/   186, tx:        729, lsn: 0/0301A408, prev "
    "0/0301A390, desc: INSERT off 3 flags 0x00, blkref #0: rel 1663/5/16385 blk 0 FPW\n";

static void test_waldump_checkpoint_end(void **state)
{
    (void)state;
    uint64_t end = 0;
    assert_int_equal(pg_waldump_checkpoint_end_parse(waldump_last, 0x1752A28, &end), 0);
    assert_true(end == 0x1752AA0);
    /* Another record follows: not the end of the WAL. */
    assert_int_equal(pg_waldump_checkpoint_end_parse(waldump_two, 0x301A390, &end), -ENOENT);
    /* Another LSN than asked for. */
    assert_int_equal(pg_waldump_checkpoint_end_parse(waldump_last, 0x1752A30, &end), -ENOENT);
    /* PostgreSQL 16 wording. */
    const char pg16[] = "rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: "
                        "5/00000028, prev 4/FFFFFF00, desc: CHECKPOINT_SHUTDOWN\n"
                        "pg_waldump: error: error in WAL record at 5/28: invalid record length "
                        "at 5/A0: expected at least 24, got 0\n";
    assert_int_equal(pg_waldump_checkpoint_end_parse(pg16, 0x500000028ULL, &end), 0);
    assert_true(end == 0x5000000A0ULL);
    assert_int_equal(pg_waldump_checkpoint_end_parse("", 0x28, &end), -ENOENT);
    assert_int_equal(
        pg_waldump_checkpoint_end_parse("pg_waldump: error: could not find file\n", 0x28, &end),
        -ENOENT);
}

/* ---- timeline history ---- */

static void test_history_parse(void **state)
{
    (void)state;
    /* Real 00000002.history. */
    const char h2[] = "1\t0/3018068\tno recovery target specified\n";
    struct pg_tl_switch *v;
    size_t n;
    assert_int_equal(pg_timeline_history_parse(h2, strlen(h2), &v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].tli, 1);
    assert_true(v[0].switchpoint == 0x3018068);
    free(v);

    const char h4[] = "# comment\n\n1\t0/3018068\tno recovery target specified\n"
                      "2\t0/5000000\tbefore 2026-01-01 00:00:00+00\r\n"
                      "3\t1/A0\tat restore point \"x\"";
    assert_int_equal(pg_timeline_history_parse(h4, strlen(h4), &v, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(v[2].tli, 3);
    assert_true(v[2].switchpoint == 0x1000000A0ULL);
    assert_true(v[1].switchpoint == 0x5000000);
    free(v);

    /* Not NUL-terminated: only len bytes count. */
    const char cut[] = "1\t0/10\tx\n2\t0/20\ty\nGARBAGE";
    assert_int_equal(pg_timeline_history_parse(cut, 18, &v, &n), 0);
    assert_int_equal(n, 2);
    free(v);

    assert_int_equal(pg_timeline_history_parse("", 0, &v, &n), 0);
    assert_int_equal(n, 0);
    assert_null(v);
    static const char *const bad[] = {"x\t0/10\tr\n", "1\tzz\tr\n", "0\t0/10\tr\n", "1 0/10\n2\n",
                                      "99999999999\t0/10\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pg_timeline_history_parse(bad[i], strlen(bad[i]), &v, &n), -EBADMSG);
        assert_null(v);
    }
}

/* ---- divergence ---- */

static void test_divergence(void **state)
{
    (void)state;
    const struct pg_tl_switch hist[] = {{1, 0x3018068}, {2, 0x5000000}};
    char why[256];
    /* Former primary on timeline 1 whose shutdown checkpoint ends exactly at the switch:
     * the new primary had everything (a clean switchover). */
    struct pg_local_position p = {.timeline = 1, .lsn = 0x3017FF0, .checkpoint_end = 0x3018068};
    assert_false(pg_diverged(&p, 2, hist, 1, why, sizeof(why)));
    /* It wrote more after the switch. */
    p.checkpoint_end = 0x301A228;
    p.lsn = 0x301A1B0;
    assert_true(pg_diverged(&p, 2, hist, 1, why, sizeof(why)));
    assert_non_null(strstr(why, "0/301A228"));
    /* The end of its checkpoint is unknown: rewind to be safe. */
    p.checkpoint_end = 0;
    assert_true(pg_diverged(&p, 2, hist, 1, why, sizeof(why)));
    /* A standby behind the switch point follows without rewind; one beyond it diverged. */
    struct pg_local_position s = {.timeline = 1, .lsn = 0x3018000, .in_recovery = true};
    assert_false(pg_diverged(&s, 2, hist, 1, why, sizeof(why)));
    s.lsn = 0x3018068;
    assert_false(pg_diverged(&s, 2, hist, 1, why, sizeof(why)));
    s.lsn = 0x3018069;
    assert_true(pg_diverged(&s, 2, hist, 1, why, sizeof(why)));
    /* Same timeline, or ahead of the primary. */
    s = (struct pg_local_position){.timeline = 2, .lsn = 0x9000000, .in_recovery = true};
    assert_false(pg_diverged(&s, 2, NULL, 0, why, sizeof(why)));
    s.timeline = 3;
    assert_true(pg_diverged(&s, 2, hist, 1, why, sizeof(why)));
    /* Two promotions later: the node's timeline 2 ended at 0/5000000. */
    s = (struct pg_local_position){.timeline = 2, .lsn = 0x4000000, .in_recovery = true};
    assert_false(pg_diverged(&s, 3, hist, 2, why, sizeof(why)));
    s.lsn = 0x5000001;
    assert_true(pg_diverged(&s, 3, hist, 2, why, sizeof(why)));
    /* A timeline the primary's history does not know (a sibling branch). */
    const struct pg_tl_switch other[] = {{1, 0x3018068}, {3, 0x6000000}};
    s = (struct pg_local_position){.timeline = 2, .lsn = 0x3018000, .in_recovery = true};
    assert_true(pg_diverged(&s, 4, other, 2, why, sizeof(why)));
    assert_true(pg_diverged(&s, 4, NULL, 0, NULL, 0));
}

/* ---- postmaster.pid ---- */

static void test_postmaster_pid(void **state)
{
    (void)state;
    const char real[] = "1756\n/tmp/pgt/a/data\n1795659443\n56001\n/tmp/pgt/a/run\n127.0.0.1\n"
                        " 11018450     98351\nready   \n";
    struct pg_postmaster pm;
    assert_int_equal(pg_postmaster_pid_parse(real, &pm), 0);
    assert_int_equal(pm.pid, 1756);
    assert_string_equal(pm.data_dir, "/tmp/pgt/a/data");
    assert_true(pm.start_time == 1795659443);
    assert_int_equal(pm.port, 56001);
    assert_string_equal(pm.socket_dir, "/tmp/pgt/a/run");
    assert_string_equal(pm.listen_addr, "127.0.0.1");
    assert_int_equal(pm.status, PG_PM_READY);
    assert_string_equal(pg_pm_status_name(pm.status), "ready");

    const char standby[] = "7\n/d\n1\n5432\n/s\n\n  0 0\nstandby \n";
    assert_int_equal(pg_postmaster_pid_parse(standby, &pm), 0);
    assert_int_equal(pm.status, PG_PM_STANDBY);
    assert_string_equal(pm.listen_addr, "");
    const char starting[] = "7\n/d\n1\n5432\n/s\n*\n  0 0\nstarting\n";
    assert_int_equal(pg_postmaster_pid_parse(starting, &pm), 0);
    assert_int_equal(pm.status, PG_PM_STARTING);
    const char stopping[] = "7\n/d\n1\n5432\n/s\n*\n  0 0\nstopping\n";
    assert_int_equal(pg_postmaster_pid_parse(stopping, &pm), 0);
    assert_int_equal(pm.status, PG_PM_STOPPING);
    /* A file caught while it is written: only the first lines. */
    assert_int_equal(pg_postmaster_pid_parse("7\n/d\n", &pm), 0);
    assert_int_equal(pm.status, PG_PM_UNKNOWN);
    assert_int_equal(pm.port, 0);
    assert_int_equal(pg_postmaster_pid_parse("", &pm), -EBADMSG);
    assert_int_equal(pg_postmaster_pid_parse("abc\n/d\n", &pm), -EBADMSG);
    assert_int_equal(pg_postmaster_pid_parse("0\n", &pm), -EBADMSG);
    assert_int_equal(pg_postmaster_pid_parse("99999999999\n", &pm), -EBADMSG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lsn_round_trip),
        cmocka_unit_test(test_controldata_primary),
        cmocka_unit_test(test_controldata_standby),
        cmocka_unit_test(test_controldata_states_and_errors),
        cmocka_unit_test(test_waldump_checkpoint_end),
        cmocka_unit_test(test_history_parse),
        cmocka_unit_test(test_divergence),
        cmocka_unit_test(test_postmaster_pid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
