/*
 * check_daemon_limits.c — rate limits through forkpoold (SPEC 5.3, 7, 8):
 * --rate-limit and its config-file line, the limit method and its errors,
 * status "limits", the job option "key", forkpoolctl limit and --key.
 *
 * Each test starts its own forkpoold (harness.h).  No timing asserts: a
 * rate of 0 holds jobs back for as long as a test needs.
 */
#include "config.h"
#include <check.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "common/jsonmp.h"
#include "daemon/daemon_opts.h"

/* ========================================================================
 * --rate-limit
 * ======================================================================== */

static int
parse_args(struct fp_daemon_opts *o, const char *a1, const char *a2)
{
    char *argv[] = { (char *)"forkpoold", (char *)"--builtin", (char *)"echo",
                     (char *)a1, (char *)a2, NULL };

    return fp_daemon_opts_parse(o, a2 != NULL ? 5 : 4, argv);
}

START_TEST(rate_limit_flag_and_config_line_set_the_pool_wide_bucket)
{
    struct fp_daemon_opts o;
    char path[512];
    FILE *f;

    ck_assert_int_eq(parse_args(&o, "--rate-limit", "2.5"), FP_OPTS_RUN);
    ck_assert(o.cfg.rate_limit == 2.5 && o.cfg.rate_burst == 0);
    fp_daemon_opts_free(&o);
    ck_assert_int_eq(parse_args(&o, "--rate-limit=100:7", NULL), FP_OPTS_RUN);
    ck_assert(o.cfg.rate_limit == 100 && o.cfg.rate_burst == 7);
    fp_daemon_opts_free(&o);

    snprintf(path, sizeof(path), "%s/f.conf", h_tempdir());
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    fputs("rate-limit 3:4\n", f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(parse_args(&o, "--config", path), FP_OPTS_RUN);
    ck_assert(o.cfg.rate_limit == 3 && o.cfg.rate_burst == 4);
    fp_daemon_opts_free(&o);
}
END_TEST

static const char *const bad_rates[] = {
    "", "x", "-1", "nan", "inf", "1:", "1:0", "1:0.5", "1:inf", "2:3:4", "1e99",
    "1000000001", "1:1000000001",
};

START_TEST(bad_rate_limit_names_the_flag)
{
    struct fp_daemon_opts o;

    ck_assert_int_eq(parse_args(&o, "--rate-limit", bad_rates[_i]), FP_OPTS_ERROR);
    ck_assert_msg(strncmp(o.err, "--rate-limit: ", 14) == 0, "%s", o.err);
    fp_daemon_opts_free(&o);
}
END_TEST

START_TEST(bad_rate_limit_exits_2)
{
    struct h_run r;
    char *const argv[] = { (char *)H_FORKPOOLD, (char *)"--rate-limit",
                           (char *)"-3", NULL };

    ck_assert_int_eq(h_exit_code(h_run_argv(&r, NULL, NULL, 5000, argv)), 2);
    ck_assert_ptr_nonnull(strstr(r.err, "--rate-limit"));
}
END_TEST

/* ========================================================================
 * The limit method and status
 * ======================================================================== */

/* status "limits"[key] (NULL if absent). */
static const msgpack_object *
limit_of(struct h_rpc *c, const char *key)
{
    const msgpack_object *lim = h_get(h_status(c)->result, "limits");

    ck_assert_ptr_nonnull(lim);
    ck_assert_int_eq(lim->type, MSGPACK_OBJECT_MAP);
    return h_get(lim, key);
}

/* Does the metrics text contain `needle`? */
static int
metrics_have(struct h_rpc *c, const char *needle)
{
    struct h_resp *r = h_rpc_call(c, "metrics", "[]");
    char *s;
    int found;

    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->result->type, MSGPACK_OBJECT_STR);
    s = malloc(r->result->via.str.size + 1);
    ck_assert_ptr_nonnull(s);
    memcpy(s, r->result->via.str.ptr, r->result->via.str.size);
    s[r->result->via.str.size] = '\0';
    found = strstr(s, needle) != NULL;
    free(s);
    return found;
}

START_TEST(limit_sets_changes_and_removes_a_bucket_seen_in_status)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1",
                                                  "--rate-limit", "50:60", NULL));
    struct h_rpc *c = h_connected(d);
    const msgpack_object *row;
    struct h_resp *r;

    row = limit_of(c, "");
    ck_assert_ptr_nonnull(row);
    ck_assert_str_eq(h_json(h_get(row, "rate")), "50.0");
    ck_assert_str_eq(h_json(h_get(row, "burst")), "60.0");
    ck_assert_int_eq(h_get(row, "tokens")->type, MSGPACK_OBJECT_FLOAT64);
    ck_assert_int_eq(h_get_int(row, "waiting"), 0);
    ck_assert_ptr_null(limit_of(c, "tenant"));

    r = h_rpc_call(c, "limit", "[\"tenant\", 2, 3]");
    ck_assert_str_eq(h_json(r->error), "null");
    ck_assert_str_eq(h_json(r->result), "true");
    row = limit_of(c, "tenant");
    ck_assert_ptr_nonnull(row);
    ck_assert_str_eq(h_json(h_get(row, "rate")), "2.0");
    ck_assert_str_eq(h_json(h_get(row, "burst")), "3.0");
    ck_assert_str_eq(h_json(h_get(row, "tokens")), "3.0");

    r = h_rpc_call(c, "limit", "[\"tenant\", 0.5]");       /* burst: max(1, R) */
    ck_assert_str_eq(h_json(r->result), "true");
    row = limit_of(c, "tenant");
    ck_assert_str_eq(h_json(h_get(row, "burst")), "1.0");

    r = h_rpc_call(c, "limit", "[\"tenant\", null]");
    ck_assert_str_eq(h_json(r->result), "true");
    ck_assert_ptr_null(limit_of(c, "tenant"));
    r = h_rpc_call(c, "limit", "[\"a\\\"b\\\\c\\nd\", 1]");
    ck_assert_str_eq(h_json(r->result), "true");
    ck_assert(metrics_have(c, "\nforkpool_rate_limit_tokens{key=\"a\\\"b\\\\c\\nd\"} 1\n"));
    ck_assert(metrics_have(c, "\nforkpool_rate_limit_tokens{key=\"\"} 60\n"));
    r = h_rpc_call(c, "limit", "[\"\", null]");
    ck_assert_str_eq(h_json(r->result), "true");
    ck_assert_ptr_null(limit_of(c, ""));
}
END_TEST

/* Requests written as raw msgpack: JSON has no NaN or infinity. */
static const struct {
    const char *bytes;
    size_t      len;
} bad_limits[] = {
#define RQ(s) { s, sizeof(s) - 1 }
    RQ("\x94\x00\x4d\xa5limit\x92\xa1" "A\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"), /* NaN */
    RQ("\x94\x00\x4d\xa5limit\x92\xa1" "A\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00"), /* inf */
    RQ("\x94\x00\x4d\xa5limit\x92\xa1" "A\xcb\xff\xf0\x00\x00\x00\x00\x00\x00"), /* -inf */
    RQ("\x94\x00\x4d\xa5limit\x92\xa1" "A\xff"),                                 /* -1 */
    RQ("\x94\x00\x4d\xa5limit\x92\xa1" "A\xa1" "5"),                             /* "5" */
    RQ("\x94\x00\x4d\xa5limit\x92\xa1" "A\xc3"),                                 /* true */
    RQ("\x94\x00\x4d\xa5limit\x93\xa1" "A\x01\x00"),                             /* burst 0 */
    RQ("\x94\x00\x4d\xa5limit\x92\x01\x01"),                                     /* key 1 */
    RQ("\x94\x00\x4d\xa5limit\x91\xa1" "A"),                                     /* [key] */
    /* Past the bound of rate and burst, 1e9. */
    RQ("\x94\x00\x4d\xa5limit\x92\xa1" "A\xcb\x44\x15\xaf\x1d\x78\xb5\x8c\x40"), /* 1e20 */
    RQ("\x94\x00\x4d\xa5limit\x92\xa0\xcb\x7f\xe1\xcc\xf3\x85\xeb\xc8\xa0"),   /* "" 1e308 */
    RQ("\x94\x00\x4d\xa5limit\x92\xa1" "A\xce\x3b\x9a\xca\x01"),                  /* 1e9 + 1 */
    RQ("\x94\x00\x4d\xa5limit\x93\xa1" "A\x01\xcf\xff\xff\xff\xff\xff\xff\xff\xff"), /* burst 2^64-1 */
#undef RQ
};

START_TEST(limit_refuses_a_rate_that_is_not_a_finite_number)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_resp *r;

    ck_assert_int_eq(h_rpc_send_raw(c, bad_limits[_i].bytes, bad_limits[_i].len), 0);
    r = h_rpc_wait(c, 0x4d, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->error->type, MSGPACK_OBJECT_STR);
    ck_assert_ptr_nonnull(strstr(h_json(r->error), "bad params"));
    ck_assert_str_eq(h_json(r->result), "null");
    ck_assert_ptr_null(limit_of(c, "A"));
    ck_assert_ptr_null(limit_of(c, ""));
}
END_TEST

/* The error says which bound: a number from 0 (or 1) to 1e9. */
START_TEST(limit_names_the_bound_it_refuses)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_resp *r;

    r = h_rpc_call(c, "limit", "[\"A\", 1e20]");
    ck_assert_str_eq(h_json(r->error), "\"bad params: rate must be a number from "
                     "0 to 1e+09 (or nil to remove the limit)\"");
    r = h_rpc_call(c, "limit", "[\"A\", 1, 1e10]");
    ck_assert_str_eq(h_json(r->error), "\"bad params: burst must be a number from "
                     "1 to 1e+09\"");
    r = h_rpc_call(c, "limit", "[\"A\", 1000000000, 1000000000]");
    ck_assert_str_eq(h_json(r->result), "true");
}
END_TEST

/* At most FP_LIMIT_KEYS_MAX keys have a bucket: a new one past it is
 * refused, naming the bound; existing keys still change, and a removed
 * one makes room. */
START_TEST(limit_refuses_a_new_key_past_the_bound)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    static uint32_t ids[FP_LIMIT_KEYS_MAX];
    char params[64];
    struct h_resp *r;

    h_rpc_cork(c);
    for (unsigned i = 0; i < FP_LIMIT_KEYS_MAX; i++) {
        snprintf(params, sizeof(params), "[\"tenant-%u\", 5]", i);
        ids[i] = h_rpc_send(c, "limit", params);
    }
    h_rpc_uncork(c);
    for (unsigned i = 0; i < FP_LIMIT_KEYS_MAX; i++) {
        /* Not ck_assert: each passed one is a message to Check's parent. */
        r = h_rpc_wait(c, ids[i], H_REPLY_MS);
        if (r == NULL || strcmp(h_json(r->result), "true") != 0)
            ck_abort_msg("limit %u: no response or not true", i);
    }
    r = h_rpc_call(c, "limit", "[\"one-more\", 5]");
    ck_assert_str_eq(h_json(r->error), "\"too many rate-limit keys (max 10000)\"");
    ck_assert_ptr_null(limit_of(c, "one-more"));
    r = h_rpc_call(c, "limit", "[\"tenant-9\", 7, 2]");
    ck_assert_str_eq(h_json(r->result), "true");
    r = h_rpc_call(c, "limit", "[\"\", 7, 2]");
    ck_assert_str_eq(h_json(r->result), "true");
    r = h_rpc_call(c, "limit", "[\"tenant-9\", null]");
    ck_assert_str_eq(h_json(r->result), "true");
    r = h_rpc_call(c, "limit", "[\"one-more\", 5]");
    ck_assert_str_eq(h_json(r->result), "true");
}
END_TEST

/* A key is any bytes but NUL; in a metrics label value the text format's
 * escapes apply (\\ \" \n) and a byte that is not valid UTF-8 becomes
 * U+FFFD, so the exposition stays UTF-8. */
START_TEST(metrics_label_values_are_escaped_utf8)
{
    static const char rq[] =
        "\x94\x00\x4e\xa5limit\x92\xaa" "a\xff" "b\xc3\xa9\"\\\n\xe2\x82" "\x01";
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_resp *r;

    ck_assert_int_eq(h_rpc_send_raw(c, rq, sizeof(rq) - 1), 0);
    r = h_rpc_wait(c, 0x4e, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->result), "true");
    ck_assert(metrics_have(c, "\nforkpool_rate_limit_tokens{key=\"a\xef\xbf\xbd"
                           "b\xc3\xa9\\\"\\\\\\n\xef\xbf\xbd\xef\xbf\xbd\"} 1\n"));
    r = h_rpc_call(c, "metrics", "[]");
    ck_assert(fp_utf8_valid(r->result->via.str.ptr, r->result->via.str.size));
}
END_TEST

/* A key with a NUL byte is refused for what it is, not for its length. */
START_TEST(a_key_with_a_nul_byte_is_refused_as_such)
{
    static const char limit[] = "\x94\x00\x4f\xa5limit\x92\xa3" "a\x00" "b\x01";
    static const char submit[] =
        "\x94\x00\x50\xa6submit\x92\x01\x81\xa3key\xa3" "a\x00" "b";
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_resp *r;

    ck_assert_int_eq(h_rpc_send_raw(c, limit, sizeof(limit) - 1), 0);
    r = h_rpc_wait(c, 0x4f, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), "\"bad params: key must not contain a NUL byte\"");
    ck_assert_int_eq(h_rpc_send_raw(c, submit, sizeof(submit) - 1), 0);
    r = h_rpc_wait(c, 0x50, H_REPLY_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_get_str(r->error, "detail"),
                     "malformed: key must not contain a NUL byte");
}
END_TEST

/* Jobs of a key at rate 0 wait in the master's queue (status: queued, the
 * worker idle, the key's "waiting"); other jobs pass them; removing the
 * limit lets them go. */
START_TEST(a_held_back_key_waits_queued_while_others_run)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    const msgpack_object *row;
    struct h_resp *r, *st;
    uint32_t held[3];

    r = h_rpc_call(c, "limit", "[\"slow\", 0, 1]");
    ck_assert_str_eq(h_json(r->result), "true");
    for (int i = 0; i < 3; i++)
        held[i] = h_rpc_submit(c, "\"held\"", "{\"key\": \"slow\"}");
    ck_assert_ptr_nonnull(h_rpc_wait(c, held[0], H_REPLY_MS));  /* its token */
    r = h_submit(c, "\"other\"", "{\"key\": \"fast\"}");
    ck_assert_str_eq(h_json(r->error), "null");
    ck_assert_str_eq(h_get_str(r->result, "result"), "other");
    st = h_status(c);
    ck_assert_int_eq(h_get_int(st->result, "queued"), 2);
    ck_assert_int_eq(h_get_int(st->result, "busy"), 0);
    ck_assert_int_eq(h_get_int(st->result, "idle"), 1);
    row = limit_of(c, "slow");
    ck_assert_int_eq(h_get_int(row, "waiting"), 2);
    ck_assert_ptr_null(limit_of(c, "fast"));
    ck_assert(metrics_have(c, "\nforkpool_rate_limit_waiting{key=\"slow\"} 2\n"));
    ck_assert(metrics_have(c, "\nforkpool_rate_limit_tokens{key=\"slow\"} 0\n"));

    r = h_rpc_call(c, "limit", "[\"slow\", null]");
    ck_assert_str_eq(h_json(r->result), "true");
    for (int i = 1; i < 3; i++) {
        r = h_rpc_wait(c, held[i], H_REPLY_MS);
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(h_json(r->error), "null");
    }
}
END_TEST

START_TEST(job_key_must_be_a_short_string)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    char opts[400];
    struct h_resp *r;

    r = h_submit(c, "1", "{\"key\": 7}");
    ck_assert_str_eq(h_get_str(r->error, "detail"),
                     "malformed: key must be a string of at most 256 bytes");
    snprintf(opts, sizeof(opts), "{\"key\": \"%0257d\"}", 0);
    r = h_submit(c, "1", opts);
    ck_assert_str_eq(h_get_str(r->error, "kind"), "rejected");
    snprintf(opts, sizeof(opts), "{\"key\": \"%0256d\"}", 0);
    r = h_submit(c, "1", opts);
    ck_assert_str_eq(h_json(r->error), "null");
}
END_TEST

/* ========================================================================
 * forkpoolctl limit, --key
 * ======================================================================== */

START_TEST(forkpoolctl_limit_and_key_through_the_daemon)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_rpc *c;
    struct h_run r;
    const msgpack_object *row;

    h_need_ctl();
    c = h_connected(d);
    ck_assert_int_eq(h_exit_code(h_ctl(&r, d, NULL, "limit", "acme", "0", "2", NULL)), 0);
    ck_assert_str_eq(r.out, "true\n");
    ck_assert_int_eq(h_exit_code(h_ctl(&r, d, NULL, "limit", "-", "1000", NULL)), 0);
    row = limit_of(c, "acme");
    ck_assert_ptr_nonnull(row);
    ck_assert_str_eq(h_json(h_get(row, "burst")), "2.0");
    ck_assert_ptr_nonnull(limit_of(c, ""));
    ck_assert_int_eq(h_exit_code(h_ctl(&r, d, NULL, "status", NULL)), 0);
    ck_assert_ptr_nonnull(strstr(r.out, "\nLIMIT "));
    ck_assert_ptr_nonnull(strstr(r.out, "\n(pool) "));
    ck_assert_ptr_nonnull(strstr(r.out, "\nacme "));

    /* acme's two tokens, then its third job waits: map prints two lines
     * only once the limit goes, so submit them one by one. */
    ck_assert_int_eq(h_exit_code(h_ctl(&r, d, "1\n2\n", "map", "--key", "acme", NULL)), 0);
    ck_assert_int_eq(h_count_lines(r.out), 2);
    row = limit_of(c, "acme");
    ck_assert_str_eq(h_json(h_get(row, "tokens")), "0.0");
    uint32_t held = h_rpc_submit(c, "3", "{\"key\": \"acme\"}");
    ck_assert_int_eq(h_exit_code(h_ctl(&r, d, NULL, "submit", "--key", "other",
                                       "\"x\"", NULL)), 0);
    ck_assert_ptr_nonnull(strstr(r.out, "\"result\": \"x\""));
    ck_assert_int_eq(h_get_int(limit_of(c, "acme"), "waiting"), 1);
    ck_assert_int_eq(h_exit_code(h_ctl(&r, d, NULL, "limit", "--remove", "acme", NULL)), 0);
    ck_assert_ptr_nonnull(h_rpc_wait(c, held, H_REPLY_MS));
    ck_assert_ptr_null(limit_of(c, "acme"));
    ck_assert_int_eq(h_exit_code(h_ctl(&r, d, NULL, "limit", "--remove", "", NULL)), 0);
    ck_assert_ptr_null(limit_of(c, ""));
}
END_TEST

static const struct {
    const char *args[4];
} ctl_usage[] = {
    { { "limit", NULL } },
    { { "limit", "k", NULL } },
    { { "limit", "k", "nan", NULL } },
    { { "limit", "k", "-1", NULL } },
    { { "limit", "k", "1", "0.5" } },
    { { "limit", "--remove", NULL } },
    { { "limit", "k", "1e20", NULL } },
    { { "limit", "k", "1", "1e10" } },
    { { "limit", "-", "1000000001", NULL } },
};

START_TEST(forkpoolctl_limit_usage_errors_exit_2)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_run r;
    const char *const *a = ctl_usage[_i].args;

    h_need_ctl();
    ck_assert_int_eq(h_exit_code(h_ctl(&r, d, NULL, a[0], a[1], a[2], a[3], NULL)), 2);
    ck_assert_ptr_nonnull(strstr(r.err, "limit"));
}
END_TEST

/* The status table stays compact whatever the bucket holds (a float of
 * 1e9 tokens printed %.2f was 13 characters; of 1e300, 300). */
START_TEST(forkpoolctl_status_prints_a_big_bucket_compactly)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1",
                                                  "--rate-limit", "1000000000", NULL));
    struct h_run r;

    h_need_ctl();
    ck_assert_int_eq(h_exit_code(h_ctl(&r, d, NULL, "status", NULL)), 0);
    ck_assert_msg(strstr(r.out, "\n(pool)                        1e+09    1e+09"
                                "    1e+09        0\n") != NULL, "%s", r.out);
}
END_TEST

static Suite *
daemon_limits_suite(void)
{
    Suite *s = suite_create("daemon_limits");
    TCase *tc = h_tcase("options", 10);

    tcase_add_test(tc, rate_limit_flag_and_config_line_set_the_pool_wide_bucket);
    tcase_add_loop_test(tc, bad_rate_limit_names_the_flag, 0,
                        sizeof(bad_rates) / sizeof(bad_rates[0]));
    tcase_add_test(tc, bad_rate_limit_exits_2);
    suite_add_tcase(s, tc);
    tc = h_tcase("method", 20);
    tcase_add_test(tc, limit_sets_changes_and_removes_a_bucket_seen_in_status);
    tcase_add_loop_test(tc, limit_refuses_a_rate_that_is_not_a_finite_number, 0,
                        sizeof(bad_limits) / sizeof(bad_limits[0]));
    tcase_add_test(tc, limit_names_the_bound_it_refuses);
    tcase_add_test(tc, limit_refuses_a_new_key_past_the_bound);
    tcase_add_test(tc, metrics_label_values_are_escaped_utf8);
    tcase_add_test(tc, a_key_with_a_nul_byte_is_refused_as_such);
    tcase_add_test(tc, a_held_back_key_waits_queued_while_others_run);
    tcase_add_test(tc, job_key_must_be_a_short_string);
    suite_add_tcase(s, tc);
    tc = h_tcase("forkpoolctl", 20);
    tcase_add_test(tc, forkpoolctl_limit_and_key_through_the_daemon);
    tcase_add_test(tc, forkpoolctl_status_prints_a_big_bucket_compactly);
    tcase_add_loop_test(tc, forkpoolctl_limit_usage_errors_exit_2, 0,
                        sizeof(ctl_usage) / sizeof(ctl_usage[0]));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(daemon_limits_suite());
}
