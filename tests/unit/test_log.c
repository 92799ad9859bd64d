/* Unit tests of logging: the logfmt line format, levels, escaping and secret redaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "platform/log.h"

#define LOG_MODULE "testmod"

/* Runs fn with stderr redirected into a pipe and returns what was written. */
static void capture(void (*fn)(void), char *out, size_t cap)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    ssize_t n = read(fds[0], out, cap - 1);
    close(fds[0]);
    out[n > 0 ? n : 0] = '\0';
}

static void emit_info(void)
{
    log_info("schema migrated", "from=%d to=%d", 1, 2);
}

static void emit_plain_and_debug(void)
{
    log_debug("hidden");
    log_warn("shown");
}

static void emit_escapes(void)
{
    log_error("say \"hi\"\nnext", "path=%s", "a\nb");
}

static void test_line_format(void **state)
{
    (void)state;
    char buf[4096];
    log_setup(LOG_LVL_INFO, "ha");
    capture(emit_info, buf, sizeof(buf));
    assert_memory_equal(buf, "ts=", 3);
    assert_non_null(strstr(buf, "Z level=info role=ha module=testmod msg=\"schema migrated\" "
                                "from=1 to=2\n"));
    /* exactly one line */
    assert_ptr_equal(strchr(buf, '\n'), buf + strlen(buf) - 1);
}

static void test_levels(void **state)
{
    (void)state;
    char buf[4096];
    log_setup(LOG_LVL_INFO, "web");
    capture(emit_plain_and_debug, buf, sizeof(buf));
    assert_null(strstr(buf, "hidden"));
    assert_non_null(strstr(buf, "level=warn role=web module=testmod msg=\"shown\"\n"));
    log_set_level(LOG_LVL_DEBUG);
    capture(emit_plain_and_debug, buf, sizeof(buf));
    assert_non_null(strstr(buf, "level=debug"));
    enum log_level l;
    assert_true(log_level_parse("WARNING", &l));
    assert_int_equal(l, LOG_LVL_WARN);
    assert_false(log_level_parse("loud", &l));
}

static void test_escaping_keeps_one_line(void **state)
{
    (void)state;
    char buf[4096];
    log_setup(LOG_LVL_INFO, "proxy");
    capture(emit_escapes, buf, sizeof(buf));
    assert_non_null(strstr(buf, "msg=\"say \\\"hi\\\"\\nnext\" path=a\\nb\n"));
    assert_ptr_equal(strchr(buf, '\n'), buf + strlen(buf) - 1);
}

static void check_redact(const char *in, const char *expect)
{
    char out[512];
    log_redact(in, out, sizeof(out));
    assert_string_equal(out, expect);
}

static void test_redact(void **state)
{
    (void)state;
    check_redact("postgres://app:s3cret@db.example.com:5432/x?sslmode=require",
                 "postgres://app:***@db.example.com:5432/x?sslmode=require");
    check_redact("postgres://app@h/x", "postgres://app@h/x");
    check_redact("host=h user=u password=s3cret dbname=d", "host=h user=u password=*** dbname=d");
    check_redact("host=h password = 'a b\\' c' port=1", "host=h password = *** port=1");
    check_redact("http://h/?token=abc&x=1", "http://h/?token=***&x=1");
    check_redact("{\"password\":\"hun\\\"ter2\",\"n\":1}", "{\"password\":\"***\",\"n\":1}");
    check_redact("{\"ci\":\"password=hunter2\"}", "{\"ci\":\"password=***\"}");
    check_redact("{\"ci\":\"host=h password=hunter2\",\"x\":1}",
                 "{\"ci\":\"host=h password=***\",\"x\":1}");
    check_redact("{\"ci\":\"host=h,token=abc\",\"x\":1}", "{\"ci\":\"host=h,token=***\",\"x\":1}");
    check_redact("passwordless=1 nopassword=2", "passwordless=1 nopassword=2");
    check_redact("", "");
    char tiny[4];
    log_redact("password=abcdef", tiny, sizeof(tiny));
    assert_int_equal(strlen(tiny), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_format),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_escaping_keeps_one_line),
        cmocka_unit_test(test_redact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
