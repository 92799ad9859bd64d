/* Unit tests of agent/dcs/pyjson, mergepatch and isotime: Python-identical JSON, RFC 7386, ISO
 * times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/dcs/isotime.h"
#include "agent/dcs/mergepatch.h"
#include "agent/dcs/pyjson.h"

static json_t *load(const char *s)
{
    struct dcs_err err = {{0}};
    json_t *v = pyjson_load(s, strlen(s), "test", &err);
    if (!v)
        fail_msg("cannot parse %s: %s", s, err.msg);
    return v;
}

/* Parses s, dumps it, and checks the text (Python's json.dumps(separators=(',', ':'))). */
static void assert_dump(const char *s, const char *want)
{
    json_t *v = load(s);
    size_t len = 0;
    char *out = pyjson_dump(v, &len);
    assert_non_null(out);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    free(out);
    json_decref(v);
}

static void test_dump_compact_ordered(void **state)
{
    (void)state;
    assert_dump("{ \"b\" : 1, \"a\" : [ 1 , 2, {\"z\":null, \"y\": true} ], \"c\": false }",
                "{\"b\":1,\"a\":[1,2,{\"z\":null,\"y\":true}],\"c\":false}");
    assert_dump("[]", "[]");
    assert_dump("{}", "{}");
    assert_dump("\"x\"", "\"x\"");
    assert_dump("-9223372036854775808", "-9223372036854775808");
    assert_dump("9223372036854775807", "9223372036854775807");
    /* the last duplicate wins, at the first one's place (as a Python dict) */
    assert_dump("{\"a\":1,\"b\":2,\"a\":3}", "{\"a\":3,\"b\":2}");
}

static void test_dump_ensure_ascii(void **state)
{
    (void)state;
    assert_dump("\"caf\xc3\xa9\"", "\"caf\\u00e9\"");
    assert_dump("\"\xe2\x82\xac\"", "\"\\u20ac\"");
    assert_dump("\"\xf0\x9f\x98\x80\"", "\"\\ud83d\\ude00\"");
    assert_dump("\"\\u007f \\u0001 \\u001f\"", "\"\\u007f \\u0001 \\u001f\"");
    assert_dump("\"a\\\"b\\\\c/d\\n\\r\\t\\b\\f\"", "\"a\\\"b\\\\c/d\\n\\r\\t\\b\\f\"");
    assert_dump("{\"k\\u00e9y\":\"v\"}", "{\"k\\u00e9y\":\"v\"}");
    assert_dump("\"~ !\"", "\"~ !\"");
}

static void assert_real(double d, const char *want)
{
    char out[40];
    assert_true(pyjson_format_real(d, out, sizeof(out)));
    assert_string_equal(out, want);
}

static void test_real_repr(void **state)
{
    (void)state;
    assert_real(0.9, "0.9");
    assert_real(2.0, "2.0");
    assert_real(0.0, "0.0");
    assert_real(-0.0, "-0.0");
    assert_real(0.1 + 0.2, "0.30000000000000004");
    assert_real(1e-05, "1e-05");
    assert_real(1.5e-05, "1.5e-05");
    assert_real(0.0001, "0.0001");
    assert_real(1e16, "1e+16");
    assert_real(1e15, "1000000000000000.0");
    assert_real(123456789.123, "123456789.123");
    assert_real(1.5e300, "1.5e+300");
    assert_real(5e-324, "5e-324");
    assert_real(1.7976931348623157e308, "1.7976931348623157e+308");
    assert_real(-2.5, "-2.5");
    assert_real(1234567890123456789.0, "1.2345678901234568e+18");
    char out[40];
    assert_false(pyjson_format_real(INFINITY, out, sizeof(out)));
    assert_false(pyjson_format_real(NAN, out, sizeof(out)));
    assert_false(pyjson_format_real(1.0, out, 8));
    assert_dump("{\"checkpoint_completion_target\":0.9,\"x\":1E2}",
                "{\"checkpoint_completion_target\":0.9,\"x\":100.0}");
}

static void test_load_errors(void **state)
{
    (void)state;
    struct dcs_err err = {{0}};
    static const char *const bad[] = {
        "{",           "{\"a\":}", "[1,2", "nul",      "{\"a\":1}x",
        "\"\\u0000\"", "\"\xff\"", "NaN",  "Infinity", "{\"a\":99999999999999999999}",
        "'a'",         "{a:1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.msg[0] = '\0';
        json_t *v = pyjson_load(bad[i], strlen(bad[i]), "thing", &err);
        if (v)
            fail_msg("accepted %s", bad[i]);
        assert_non_null(strstr(err.msg, "thing: "));
    }
    assert_null(pyjson_load("", 0, "thing", &err));
    assert_string_equal(err.msg, "thing: empty value");
    assert_null(pyjson_load(NULL, 3, "thing", NULL));
    /* embedded NUL: the length is honoured, the byte is refused */
    assert_null(pyjson_load("{\"a\":1}\0", 8, "thing", &err));
    /* too deep for the parser: an error, never a stack overflow */
    size_t n = 100000;
    char *deep = malloc(n);
    assert_non_null(deep);
    memset(deep, '[', n);
    assert_null(pyjson_load(deep, n, "thing", &err));
    free(deep);
    /* too large */
    size_t big = DCS_VALUE_MAX + 1;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, ' ', big);
    huge[0] = '1';
    assert_null(pyjson_load(huge, big, "thing", &err));
    assert_non_null(strstr(err.msg, "exceeds"));
    free(huge);
}

static void test_dump_limits(void **state)
{
    (void)state;
    json_t *v = json_array(), *inner = v;
    assert_null(pyjson_dump(NULL, NULL));
    for (int i = 0; i < DCS_JSON_MAX_DEPTH + 5; i++) {
        json_t *a = json_array();
        json_array_append_new(inner, a);
        inner = a;
    }
    assert_null(pyjson_dump(v, NULL));
    json_decref(v);
    /* output larger than DCS_VALUE_MAX */
    json_t *s = json_stringn_nocheck("", 0);
    char *chunk = malloc(DCS_VALUE_MAX);
    assert_non_null(chunk);
    memset(chunk, 'a', DCS_VALUE_MAX);
    json_string_setn_nocheck(s, chunk, DCS_VALUE_MAX);
    assert_null(pyjson_dump(s, NULL));
    free(chunk);
    json_decref(s);
}

static void test_field_readers(void **state)
{
    (void)state;
    struct dcs_err err = {{0}};
    json_t *o = load("{\"s\":\"abc\",\"i\":42,\"b\":true,\"n\":null,\"r\":1.5,\"neg\":-1}");
    char buf[8];
    int64_t i = 0;
    bool b = false;

    assert_int_equal(pyjson_get_str(o, "s", buf, sizeof(buf), "obj", &err), 1);
    assert_string_equal(buf, "abc");
    assert_int_equal(pyjson_get_str(o, "missing", buf, sizeof(buf), "obj", &err), 0);
    assert_int_equal(pyjson_get_str(o, "n", buf, sizeof(buf), "obj", &err), 0);
    assert_int_equal(pyjson_get_str(o, "i", buf, sizeof(buf), "obj", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "'i' must be a string, not an integer"));
    assert_int_equal(pyjson_get_str(o, "s", buf, 3, "obj", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "limit"));

    assert_int_equal(pyjson_get_int(o, "i", 0, 100, &i, "obj", &err), 1);
    assert_int_equal(i, 42);
    assert_int_equal(pyjson_get_int(o, "i", 0, 10, &i, "obj", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "outside 0..10"));
    assert_int_equal(pyjson_get_int(o, "r", 0, 10, &i, "obj", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "not a real number"));
    assert_int_equal(pyjson_get_int(o, "s", 0, 10, &i, "obj", &err), -EINVAL);
    assert_int_equal(pyjson_get_int(o, "neg", 0, 10, &i, "obj", &err), -EINVAL);
    assert_int_equal(pyjson_get_int(o, "n", 0, 10, &i, "obj", &err), 0);

    assert_int_equal(pyjson_get_bool(o, "b", &b, "obj", &err), 1);
    assert_true(b);
    assert_int_equal(pyjson_get_bool(o, "i", &b, "obj", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "true or false"));
    assert_int_equal(pyjson_get_bool(o, "nope", &b, "obj", &err), 0);
    /* readers on a non-object: absent */
    json_t *arr = load("[1]");
    assert_int_equal(pyjson_get_bool(arr, "b", &b, "obj", &err), 0);
    json_decref(arr);
    json_decref(o);
    assert_false(dcs_errf(NULL, "no sink %d", 1));
}

/* ---- RFC 7386 ---------------------------------------------------------------------------- */

static void assert_patch(const char *target, const char *patch, const char *want)
{
    json_t *t = load(target), *p = load(patch), *w = load(want);
    json_t *r = dcs_merge_patch(t, p);
    assert_non_null(r);
    if (!json_equal(r, w)) {
        char *got = pyjson_dump(r, NULL);
        fail_msg("%s + %s = %s, want %s", target, patch, got, want);
    }
    /* the target is not modified */
    json_t *t2 = load(target);
    assert_true(json_equal(t, t2));
    json_decref(t2);
    json_decref(r);
    json_decref(w);
    json_decref(p);
    json_decref(t);
}

static void test_merge_patch_rfc7386_appendix_a(void **state)
{
    (void)state;
    assert_patch("{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
    assert_patch("{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}");
    assert_patch("{\"a\":\"b\"}", "{\"a\":null}", "{}");
    assert_patch("{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}");
    assert_patch("{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
    assert_patch("{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}");
    assert_patch("{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}",
                 "{\"a\":{\"b\":\"d\"}}");
    assert_patch("{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}");
    assert_patch("[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]");
    assert_patch("{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]");
    assert_patch("{\"a\":\"foo\"}", "null", "null");
    assert_patch("{\"a\":\"foo\"}", "\"bar\"", "\"bar\"");
    assert_patch("{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}");
    assert_patch("[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}");
    assert_patch("{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}");
}

static void test_merge_patch_rfc7386_section3_order(void **state)
{
    (void)state;
    json_t *t = load("{\"title\":\"Goodbye!\",\"author\":{\"givenName\":\"John\",\"familyName\":"
                     "\"Doe\"},\"tags\":[\"example\",\"sample\"],\"content\":\"This will be "
                     "unchanged\"}");
    json_t *p = load("{\"title\":\"Hello!\",\"phoneNumber\":\"+01-123-456-7890\",\"author\":{"
                     "\"familyName\":null},\"tags\":[\"example\"]}");
    bool changed = false;
    json_t *r = dcs_merge_patch_changed(t, p, &changed);
    char *s = pyjson_dump(r, NULL);
    /* existing keys keep their place, new ones are appended (Python dict order) */
    assert_string_equal(s, "{\"title\":\"Hello!\",\"author\":{\"givenName\":\"John\"},\"tags\":["
                           "\"example\"],\"content\":\"This will be unchanged\",\"phoneNumber\":"
                           "\"+01-123-456-7890\"}");
    assert_true(changed);
    free(s);
    json_decref(r);
    json_decref(p);
    /* a patch that changes nothing */
    p = load("{\"title\":\"Goodbye!\",\"missing\":null}");
    r = dcs_merge_patch_changed(t, p, &changed);
    assert_false(changed);
    json_decref(r);
    json_decref(p);
    assert_null(dcs_merge_patch(t, NULL));
    p = load("{\"a\":1}");
    r = dcs_merge_patch_changed(NULL, p, &changed);
    assert_true(changed);
    assert_true(json_equal(r, p));
    json_decref(r);
    json_decref(p);
    json_decref(t);
}

/* ---- ISO-8601 ---------------------------------------------------------------------------- */

static void test_isotime_parse(void **state)
{
    (void)state;
    int64_t ms = 0;
    bool tz = false;
    assert_true(dcs_time_parse("2019-09-24T12:00:00+00:00", &ms, &tz));
    assert_true(tz);
    assert_int_equal(ms, 1569326400000LL);
    assert_true(dcs_time_parse("2019-09-23T16:57:57+02:00", &ms, &tz));
    assert_int_equal(ms, 1569250677000LL);
    assert_true(dcs_time_parse("2016-01-14T10:09:57.1394Z", &ms, &tz));
    assert_int_equal(ms, 1452766197139LL);
    assert_true(dcs_time_parse("2016-01-14 10:09-0530", &ms, &tz));
    assert_int_equal(ms, 1452766140000LL + 5 * 3600000LL + 30 * 60000LL);
    assert_true(dcs_time_parse("1970-01-01T00:00:00", &ms, &tz));
    assert_false(tz);
    assert_int_equal(ms, 0);
    assert_true(dcs_time_parse("1969-12-31T23:59:59.5+00", &ms, NULL));
    assert_int_equal(ms, -500);
    assert_true(dcs_time_parse("2024-02-29T00:00:00Z", &ms, &tz));
    static const char *const bad[] = {
        "",
        "2019-09-24",
        "2019-13-01T00:00:00Z",
        "2019-02-29T00:00:00Z",
        "2019-04-31T00:00:00Z",
        "2019-09-24T24:00:00Z",
        "2019-09-24T12:60:00Z",
        "2019-09-24T12:00:60Z",
        "2019-09-24T12:00:00+24:00",
        "2019-09-24T12:00:00+0",
        "2019-09-24T12:00:00.Z",
        "2019-09-24T12:00:00Zjunk",
        "0000-01-01T00:00:00Z",
        "19-09-24T12:00:00Z",
        "2019/09/24T12:00:00Z",
        "2019-09-24X12:00:00Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dcs_time_parse(bad[i], &ms, &tz))
            fail_msg("accepted %s", bad[i]);
    }
    assert_false(dcs_time_parse(NULL, &ms, &tz));
}

static void test_isotime_format(void **state)
{
    (void)state;
    char out[DCS_TIME_MAX];
    int64_t back = 0;
    assert_int_equal(dcs_time_format(1569326400000LL, out, sizeof(out)), 25);
    assert_string_equal(out, "2019-09-24T12:00:00+00:00");
    assert_true(dcs_time_format(1452766197139LL, out, sizeof(out)) > 0);
    assert_string_equal(out, "2016-01-14T10:09:57.139000+00:00");
    assert_true(dcs_time_format(-500, out, sizeof(out)) > 0);
    assert_string_equal(out, "1969-12-31T23:59:59.500000+00:00");
    assert_true(dcs_time_parse(out, &back, NULL));
    assert_int_equal(back, -500);
    assert_int_equal(dcs_time_format(INT64_MAX, out, sizeof(out)), -EINVAL);
    assert_int_equal(dcs_time_format(INT64_MIN, out, sizeof(out)), -EINVAL);
    assert_int_equal(dcs_time_format(0, out, 10), -ENAMETOOLONG);
    for (int64_t t = -62135596800000LL; t < 253402300800000LL; t += 7777777777777LL) {
        assert_true(dcs_time_format(t, out, sizeof(out)) > 0);
        assert_true(dcs_time_parse(out, &back, NULL));
        assert_int_equal(back, t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dump_compact_ordered),
        cmocka_unit_test(test_dump_ensure_ascii),
        cmocka_unit_test(test_real_repr),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_dump_limits),
        cmocka_unit_test(test_field_readers),
        cmocka_unit_test(test_merge_patch_rfc7386_appendix_a),
        cmocka_unit_test(test_merge_patch_rfc7386_section3_order),
        cmocka_unit_test(test_isotime_parse),
        cmocka_unit_test(test_isotime_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
