/* DCS small values: leader, initialize, optime/leader, status, sync, failover and failsafe. */
#include "agent/dcs/values.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool put(json_t *obj, const char *key, json_t *v)
{
    return v && json_object_set_new(obj, key, v) == 0;
}

/* Dumps o (and releases it); NULL with err set on failure. */
static char *finish(json_t *o, size_t *len, const char *what, struct dcs_err *err)
{
    char *text = o ? pyjson_dump(o, len) : NULL;
    if (!text)
        dcs_errf(err, "%s: out of memory or value not representable", what);
    json_decref(o);
    return text;
}

/* True if value is only blanks (or empty), which Patroni reads as "no value". */
static bool blank(const char *value, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!isspace((unsigned char)value[i]))
            return false;
    }
    return true;
}

/* Parses len bytes of decimal digits into a uint64. */
static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* ---- leader ------------------------------------------------------------------------------ */

bool dcs_leader_decode(const char *value, size_t len, char *name, size_t cap, struct dcs_err *err)
{
    if (!value || !dcs_name_valid_n(value, len))
        return dcs_errf(err, "leader: value is not a valid member name");
    if (len >= cap)
        return dcs_errf(err, "leader: name longer than %zu bytes", cap - 1);
    memcpy(name, value, len);
    name[len] = '\0';
    return true;
}

/* ---- initialize and optime/leader --------------------------------------------------------- */

bool dcs_initialize_decode(const char *value, size_t len, struct dcs_initialize *out,
                           struct dcs_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!value || len == 0) {
        out->racing = true;
        return true;
    }
    if (!parse_u64(value, len, &out->sysid_num))
        return dcs_errf(err, "initialize: value is not a decimal system identifier");
    memcpy(out->sysid, value, len);
    out->sysid[len] = '\0';
    return true;
}

int dcs_initialize_encode(uint64_t sysid, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%" PRIu64, sysid);
    return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : n;
}

bool dcs_optime_decode(const char *value, size_t len, int64_t *lsn, struct dcs_err *err)
{
    uint64_t v;
    if (!value || !parse_u64(value, len, &v) || v > INT64_MAX)
        return dcs_errf(err, "optime/leader: value is not a decimal LSN");
    *lsn = (int64_t)v;
    return true;
}

int dcs_optime_encode(int64_t lsn, char *out, size_t cap)
{
    if (lsn < 0)
        return -EINVAL;
    int n = snprintf(out, cap, "%" PRId64, lsn);
    return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : n;
}

/* ---- status ------------------------------------------------------------------------------ */

static bool read_lsn(const json_t *v, int64_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_string(v)) {
        uint64_t u;
        if (parse_u64(json_string_value(v), json_string_length(v), &u) && u <= INT64_MAX) {
            *out = (int64_t)u;
            return true;
        }
    }
    return false;
}

static bool decode_status_slots(const json_t *slots, struct dcs_status *out, struct dcs_err *err)
{
    const char *key;
    json_t *v;
    if (!json_is_object(slots))
        return dcs_errf(err, "status: 'slots' must be an object, not %s", pyjson_type_name(slots));
    json_object_foreach((json_t *)slots, key, v)
    {
        struct dcs_slot_lsn *s;
        if (out->nslots == DCS_STATUS_SLOTS_MAX)
            return dcs_errf(err, "status: more than %d slots", DCS_STATUS_SLOTS_MAX);
        s = &out->slots[out->nslots];
        if (strlen(key) >= sizeof(s->name))
            return dcs_errf(err, "status: slot name longer than %zu bytes", sizeof(s->name) - 1);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return dcs_errf(err, "status: slot '%s' must have a non-negative integer LSN", key);
        memcpy(s->name, key, strlen(key) + 1);
        s->lsn = json_integer_value(v);
        out->nslots++;
    }
    return true;
}

static bool decode_retain(const json_t *list, struct dcs_status *out, struct dcs_err *err)
{
    size_t i;
    json_t *v;
    if (!json_is_array(list))
        return dcs_errf(err, "status: 'retain_slots' must be a list, not %s",
                        pyjson_type_name(list));
    if (json_array_size(list) > DCS_STATUS_SLOTS_MAX)
        return dcs_errf(err, "status: more than %d retain_slots", DCS_STATUS_SLOTS_MAX);
    json_array_foreach(list, i, v)
    {
        if (!pyjson_copy_str(v, out->retain_slots[i], DCS_SLOT_NAME_MAX, "status", "retain_slots[]",
                             err))
            return false;
        out->nretain++;
    }
    return true;
}

bool dcs_status_decode(const char *value, size_t len, struct dcs_status *out, struct dcs_err *err)
{
    json_t *root, *v;
    bool ok = false;

    memset(out, 0, sizeof(*out));
    root = pyjson_load(value, len, "status", err);
    if (!root)
        return false;
    if (json_is_integer(root)) { /* legacy: the bare LSN */
        ok = read_lsn(root, &out->optime) ||
             dcs_errf(err, "status: a bare LSN must be a non-negative integer");
        out->has_optime = ok;
        goto out;
    }
    if (!json_is_object(root)) {
        dcs_errf(err, "status: value must be a JSON object, not %s", pyjson_type_name(root));
        goto out;
    }
    v = json_object_get(root, "optime");
    if (v && !json_is_null(v)) {
        if (!read_lsn(v, &out->optime)) {
            dcs_errf(err, "status: 'optime' must be a non-negative integer, not %s",
                     pyjson_type_name(v));
            goto out;
        }
        out->has_optime = true;
    }
    v = json_object_get(root, "slots");
    if (v && !json_is_null(v) && !decode_status_slots(v, out, err))
        goto out;
    v = json_object_get(root, "retain_slots");
    if (v && !json_is_null(v) && !decode_retain(v, out, err))
        goto out;
    ok = true;
out:
    json_decref(root);
    return ok;
}

char *dcs_status_encode(const struct dcs_status *s, size_t *len, struct dcs_err *err)
{
    json_t *o, *slots = NULL, *retain = NULL;
    bool added;

    if (!s->has_optime || s->optime < 0 || s->nslots > DCS_STATUS_SLOTS_MAX ||
        s->nretain > DCS_STATUS_SLOTS_MAX) {
        dcs_errf(err, "status: a non-negative optime is required");
        return NULL;
    }
    o = json_object();
    if (!o || !put(o, "optime", json_integer(s->optime)))
        goto oom;
    if (s->nslots) {
        if (!(slots = json_object()))
            goto oom;
        for (size_t i = 0; i < s->nslots; i++) {
            if (s->slots[i].lsn < 0 || !put(slots, s->slots[i].name, json_integer(s->slots[i].lsn)))
                goto oom;
        }
        added = put(o, "slots", slots); /* steals slots either way */
        slots = NULL;
        if (!added)
            goto oom;
    }
    if (s->nretain) {
        if (!(retain = json_array()))
            goto oom;
        for (size_t i = 0; i < s->nretain; i++) {
            if (json_array_append_new(retain, json_string(s->retain_slots[i])) != 0)
                goto oom;
        }
        added = put(o, "retain_slots", retain);
        retain = NULL;
        if (!added)
            goto oom;
    }
    return finish(o, len, "status", err);
oom:
    json_decref(slots);
    json_decref(retain);
    json_decref(o);
    dcs_errf(err, "status: out of memory or value not representable");
    return NULL;
}

/* ---- sync -------------------------------------------------------------------------------- */

static bool split_standbys(const char *list, struct dcs_sync *out, struct dcs_err *err)
{
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        const char *b = p, *e = p + n;
        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        if (e > b) {
            if (out->nstandby == DCS_SYNC_MAX)
                return dcs_errf(err, "sync: more than %d sync standbys", DCS_SYNC_MAX);
            if ((size_t)(e - b) >= DCS_NAME_MAX)
                return dcs_errf(err, "sync: a standby name is too long");
            memcpy(out->standby[out->nstandby], b, (size_t)(e - b));
            out->standby[out->nstandby][e - b] = '\0';
            out->nstandby++;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return true;
}

bool dcs_sync_decode(const char *value, size_t len, struct dcs_sync *out, struct dcs_err *err)
{
    json_t *root, *v;
    char standbys[DCS_SYNC_MAX * DCS_NAME_MAX];
    bool ok = false;
    int r;

    memset(out, 0, sizeof(*out));
    if (!value || blank(value, len))
        return true;
    root = pyjson_load(value, len, "sync", err);
    if (!root)
        return false;
    if (json_is_null(root)) {
        ok = true;
        goto out;
    }
    if (!json_is_object(root)) {
        dcs_errf(err, "sync: value must be a JSON object, not %s", pyjson_type_name(root));
        goto out;
    }
    if (pyjson_get_str(root, "leader", out->leader, sizeof(out->leader), "sync", err) < 0)
        goto out;
    r = pyjson_get_str(root, "sync_standby", standbys, sizeof(standbys), "sync", err);
    if (r < 0 || (r > 0 && !split_standbys(standbys, out, err)))
        goto out;
    v = json_object_get(root, "quorum");
    if (v && !json_is_null(v)) {
        if (pyjson_get_int(root, "quorum", 0, DCS_SYNC_MAX, &out->quorum, "sync", err) < 0)
            goto out;
        out->has_quorum = true;
    }
    ok = true;
out:
    json_decref(root);
    return ok;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *dcs_sync_encode(const struct dcs_sync *s, size_t *len, struct dcs_err *err)
{
    const char *names[DCS_SYNC_MAX];
    char joined[DCS_SYNC_MAX * DCS_NAME_MAX];
    size_t pos = 0;
    json_t *o;

    if (!dcs_name_valid(s->leader)) {
        dcs_errf(err, "sync: a valid leader name is required");
        return NULL;
    }
    if (s->nstandby > DCS_SYNC_MAX) {
        dcs_errf(err, "sync: more than %d sync standbys", DCS_SYNC_MAX);
        return NULL;
    }
    for (size_t i = 0; i < s->nstandby; i++) {
        if (!dcs_name_valid(s->standby[i]) || strchr(s->standby[i], ',')) {
            dcs_errf(err, "sync: standby %zu is not a valid member name", i);
            return NULL;
        }
        names[i] = s->standby[i];
    }
    qsort(names, s->nstandby, sizeof(names[0]), cmp_names);
    joined[0] = '\0';
    for (size_t i = 0; i < s->nstandby; i++) {
        int n = snprintf(joined + pos, sizeof(joined) - pos, "%s%s", i ? "," : "", names[i]);
        if (n < 0 || (size_t)n >= sizeof(joined) - pos) {
            dcs_errf(err, "sync: standby list too long");
            return NULL;
        }
        pos += (size_t)n;
    }
    o = json_object();
    if (!o || !put(o, "leader", json_string(s->leader)) ||
        (s->has_quorum && !put(o, "quorum", json_integer(s->quorum))) ||
        !put(o, "sync_standby", s->nstandby ? json_string(joined) : json_null())) {
        json_decref(o);
        o = NULL;
    }
    return finish(o, len, "sync", err);
}

bool dcs_sync_matches(const struct dcs_sync *s, const char *name, bool check_leader)
{
    if (!name || !*name || !s->leader[0])
        return false;
    if (check_leader && strcasecmp(name, s->leader) == 0)
        return true;
    for (size_t i = 0; i < s->nstandby; i++) {
        if (strcasecmp(name, s->standby[i]) == 0)
            return true;
    }
    return false;
}

/* ---- failover ---------------------------------------------------------------------------- */

bool dcs_failover_empty(const struct dcs_failover *f)
{
    return !f->leader[0] && !f->candidate[0];
}

/* Legacy "leader:candidate" (the parts stripped of blanks). */
static bool decode_failover_legacy(const char *value, size_t len, struct dcs_failover *out,
                                   struct dcs_err *err)
{
    const char *colon = memchr(value, ':', len);
    const char *parts[2] = {value, colon ? colon + 1 : NULL};
    size_t lens[2] = {colon ? (size_t)(colon - value) : len,
                      colon ? len - (size_t)(colon + 1 - value) : 0};
    char *dst[2] = {out->leader, out->candidate};

    if (colon && memchr(colon + 1, ':', lens[1]))
        lens[1] = (size_t)((const char *)memchr(colon + 1, ':', lens[1]) - (colon + 1));
    for (int i = 0; i < 2; i++) {
        const char *b = parts[i];
        size_t n = lens[i];
        if (!b)
            continue;
        while (n && isspace((unsigned char)*b))
            b++, n--;
        while (n && isspace((unsigned char)b[n - 1]))
            n--;
        if (n == 0)
            continue;
        if (!dcs_name_valid_n(b, n))
            return dcs_errf(err, "failover: value is neither JSON nor 'leader:candidate'");
        memcpy(dst[i], b, n);
        dst[i][n] = '\0';
    }
    return true;
}

bool dcs_failover_decode(const char *value, size_t len, struct dcs_failover *out,
                         struct dcs_err *err)
{
    json_t *root;
    bool ok = false;
    int r;

    memset(out, 0, sizeof(*out));
    if (!value || blank(value, len))
        return true;
    if (len > DCS_VALUE_MAX)
        return dcs_errf(err, "failover: value of %zu bytes exceeds the limit", len);
    root = json_loadb(value, len, JSON_DECODE_ANY, NULL);
    if (!root) {
        size_t i = 0;
        while (i < len && isspace((unsigned char)value[i]))
            i++;
        if (strchr("{[\"", value[i])) /* broken JSON is not the legacy form */
            return dcs_errf(err, "failover: invalid JSON");
        return decode_failover_legacy(value, len, out, err);
    }
    if (json_is_null(root)) {
        ok = true;
        goto out;
    }
    if (!json_is_object(root)) {
        dcs_errf(err, "failover: value must be a JSON object, not %s", pyjson_type_name(root));
        goto out;
    }
    if (pyjson_get_str(root, "leader", out->leader, sizeof(out->leader), "failover", err) < 0 ||
        pyjson_get_str(root, "member", out->candidate, sizeof(out->candidate), "failover", err) < 0)
        goto out;
    r = pyjson_get_str(root, "scheduled_at", out->scheduled_at, sizeof(out->scheduled_at),
                       "failover", err);
    if (r < 0)
        goto out;
    if (r > 0 && out->scheduled_at[0]) {
        bool tz = false;
        if (!dcs_time_parse(out->scheduled_at, &out->scheduled_at_ms, &tz) || !tz) {
            dcs_errf(err, "failover: 'scheduled_at' is not an ISO-8601 time with a time zone");
            goto out;
        }
        out->has_scheduled_at = true;
    }
    ok = true;
out:
    json_decref(root);
    return ok;
}

char *dcs_failover_encode(const struct dcs_failover *f, size_t *len, struct dcs_err *err)
{
    char when[DCS_TIME_MAX];
    json_t *o;

    if ((f->leader[0] && !dcs_name_valid(f->leader)) ||
        (f->candidate[0] && !dcs_name_valid(f->candidate))) {
        dcs_errf(err, "failover: leader and member must be valid member names");
        return NULL;
    }
    if (f->has_scheduled_at && dcs_time_format(f->scheduled_at_ms, when, sizeof(when)) < 0) {
        dcs_errf(err, "failover: scheduled_at is out of range");
        return NULL;
    }
    o = json_object();
    if (!o || (f->leader[0] && !put(o, "leader", json_string(f->leader))) ||
        (f->candidate[0] && !put(o, "member", json_string(f->candidate))) ||
        (f->has_scheduled_at && !put(o, "scheduled_at", json_string(when)))) {
        json_decref(o);
        o = NULL;
    }
    return finish(o, len, "failover", err);
}

/* ---- failsafe ---------------------------------------------------------------------------- */

bool dcs_failsafe_decode(const char *value, size_t len, struct dcs_failsafe *out,
                         struct dcs_err *err)
{
    json_t *root, *v;
    const char *key;
    size_t klen;
    bool ok = false;

    memset(out, 0, sizeof(*out));
    root = pyjson_load(value, len, "failsafe", err);
    if (!root)
        return false;
    if (!json_is_object(root)) {
        dcs_errf(err, "failsafe: value must be a JSON object, not %s", pyjson_type_name(root));
        goto out;
    }
    json_object_keylen_foreach(root, key, klen, v)
    {
        struct dcs_failsafe_entry *e;
        if (out->n == DCS_FAILSAFE_MAX) {
            dcs_errf(err, "failsafe: more than %d members", DCS_FAILSAFE_MAX);
            goto out;
        }
        e = &out->e[out->n];
        if (!dcs_name_valid_n(key, klen)) {
            dcs_errf(err, "failsafe: a key is not a valid member name");
            goto out;
        }
        memcpy(e->name, key, klen + 1);
        if (!pyjson_copy_str(v, e->api_url, sizeof(e->api_url), "failsafe", "<member>", err))
            goto out;
        if (dcs_url_has_userinfo(e->api_url)) {
            dcs_errf(err, "failsafe: api_url of '%s' carries credentials", e->name);
            goto out;
        }
        out->n++;
    }
    ok = true;
out:
    json_decref(root);
    return ok;
}

char *dcs_failsafe_encode(const struct dcs_failsafe *f, size_t *len, struct dcs_err *err)
{
    json_t *o;
    if (f->n > DCS_FAILSAFE_MAX) {
        dcs_errf(err, "failsafe: more than %d members", DCS_FAILSAFE_MAX);
        return NULL;
    }
    for (size_t i = 0; i < f->n; i++) {
        if (!dcs_name_valid(f->e[i].name) || dcs_url_has_userinfo(f->e[i].api_url)) {
            dcs_errf(err,
                     "failsafe: entry %zu has an invalid name or an api_url with "
                     "credentials",
                     i);
            return NULL;
        }
    }
    o = json_object();
    for (size_t i = 0; o && i < f->n; i++) {
        if (!put(o, f->e[i].name, json_string(f->e[i].api_url))) {
            json_decref(o);
            o = NULL;
        }
    }
    return finish(o, len, "failsafe", err);
}

const struct dcs_failsafe_entry *dcs_failsafe_find(const struct dcs_failsafe *f, const char *name)
{
    for (size_t i = 0; name && i < f->n; i++) {
        if (strcmp(f->e[i].name, name) == 0)
            return &f->e[i];
    }
    return NULL;
}
