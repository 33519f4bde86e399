/*
 * check_ctl_commands.c — the two command tables: forkpoold's control
 * methods (src/daemon/control_dispatch.c, rows in control_methods.c) and
 * forkpoolctl's commands (src/ctl/forkpoolctl.c).
 *
 * The dispatch mechanism is tested in-process against a table of its own
 * (a client whose replies collect in its buffer, no socket, no loop); the
 * real rows through the real daemon and the real forkpoolctl.
 */
#include "config.h"
#include <check.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec/wire.h"
#include "common/jsonmp.h"
#include "daemon/control_int.h"
#include "harness.h"

/* ========================================================================
 * The dispatch mechanism, against a table of its own
 * ======================================================================== */

/* What the test handler saw. */
static struct {
    unsigned    calls;
    uint32_t    n;
    const char *param[CTL_MAX_PARAMS];  /* each param as h_json */
} seen;

static const char *
raw_json(const char *raw, size_t len)
{
    msgpack_unpacked u;
    const char *text;

    msgpack_unpacked_init(&u);
    ck_assert_int_eq(msgpack_unpack_next(&u, raw, len, NULL), MSGPACK_UNPACK_SUCCESS);
    text = h_json(&u.data);
    msgpack_unpacked_destroy(&u);
    return text;
}

/* Records its params and answers true. */
static void
record(struct client *c, uint32_t msgid, struct ctl_params *p)
{
    struct ctl_reply r;

    seen.calls++;
    seen.n = p->n;
    for (uint32_t i = 0; i < p->n && i < CTL_MAX_PARAMS; i++)
        seen.param[i] = raw_json(p->v[i].raw, p->v[i].len);
    ctl_reply_begin_response(&r, c, msgid);
    msgpack_pack_nil(&r.pk);
    msgpack_pack_true(&r.pk);
    ck_assert_int_eq(ctl_reply_end(&r), 0);
}

static const struct ctl_method test_methods[] = {
    { .name = "plain", .max_params = CTL_ANY_COUNT, .handler = record },
    { .name = "count", .min_params = 1, .max_params = 1, .shape = { CTL_UINT },
      .usage = "bad params: expected [n]", .handler = record },
    { .name = "u32", .min_params = 1, .max_params = 1, .shape = { CTL_U32 },
      .usage = "bad params: expected [n]", .handler = record },
    { .name = "outcome", .min_params = 1, .max_params = 2,
      .shape = { CTL_ARRAY, CTL_MAP }, .outcome_errors = 1,
      .usage = "malformed: params must be [[x, ...]] or [[x, ...], options]",
      .handler = record },
};

static struct fp_control fake_ctl;
static struct client fake_client;
static int fake_peer = -1;

static void
loop_never_runs(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop; (void)io; (void)revents;
    ck_abort_msg("the fake client's watchers never fire: the loop never runs");
}

/* A server on test_methods with one client, whose replies stay in its
 * write buffer (its socket is never written: the loop never runs). */
static void
fake_setup(void)
{
    int sv[2];

    memset(&seen, 0, sizeof(seen));
    memset(&fake_ctl, 0, sizeof(fake_ctl));
    memset(&fake_client, 0, sizeof(fake_client));
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fake_ctl.loop = ev_default_loop(0);
    fake_ctl.methods = test_methods;
    fake_ctl.nmethods = sizeof(test_methods) / sizeof(test_methods[0]);
    LIST_INIT(&fake_ctl.clients);
    fp_control_set_job_limits(&fake_ctl, 0, 0, 1);
    fp_control_set_reply_limits(&fake_ctl, 0, 0, 0);
    fake_client.ctl = &fake_ctl;
    fake_client.fd = sv[0];
    fake_peer = sv[1];
    ev_io_init(&fake_client.rio, loop_never_runs, sv[0], EV_READ);
    ev_io_init(&fake_client.wio, loop_never_runs, sv[0], EV_WRITE);
}

static void
fake_teardown(void)
{
    ev_io_stop(fake_ctl.loop, &fake_client.rio);
    ev_io_stop(fake_ctl.loop, &fake_client.wio);
    close(fake_client.fd);
    close(fake_peer);
    fp_outq_free(&fake_client.out);
}

/* Dispatch [0, 7, method, params] (params as JSON).  Returns what
 * ctl_dispatch returned. */
static int
dispatch(const char *method, const char *params_json)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char err[256];
    int rc;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int(&pk, 0);
    msgpack_pack_int(&pk, 7);
    fp_pack_cstr(&pk, method);
    ck_assert_msg(fp_json_text_pack(params_json, strlen(params_json), &pk, err,
                                    sizeof(err)) == 0, "%s", err);
    rc = ctl_dispatch(&fake_client, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* The one response to msgid 7 the client got: its error and result as
 * h_json text. */
static void
response(const char **error, const char **result)
{
    msgpack_unpacked u;
    size_t off = 0, len = 0;
    struct iovec iov[64];
    static char bytes[1 << 16];
    int n = fp_outq_iov(&fake_client.out, iov, 64);

    for (int i = 0; i < n; i++) {   /* the queue's segments, in order */
        ck_assert_uint_le(len + iov[i].iov_len, sizeof(bytes));
        memcpy(bytes + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    ck_assert_uint_eq(len, fake_client.out.len);
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(msgpack_unpack_next(&u, bytes, len, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(off, len);
    ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(u.data.via.array.size, 4);
    ck_assert_str_eq(h_json(&u.data.via.array.ptr[0]), "1");
    ck_assert_str_eq(h_json(&u.data.via.array.ptr[1]), "7");
    *error = h_json(&u.data.via.array.ptr[2]);
    *result = h_json(&u.data.via.array.ptr[3]);
    msgpack_unpacked_destroy(&u);
}

#define EXPECTED_N  "\"bad params: expected [n]\""
#define REJECTED    "{\"id\": null, \"kind\": \"rejected\", \"detail\": " \
                    "\"malformed: params must be [[x, ...]] or [[x, ...], options]\"}"

static const struct {
    const char *method, *params;
    const char *error;      /* NULL: the handler runs */
} rule_cases[] = {
    { "plain", "[]", NULL },
    { "plain", "[1, 2, 3]", NULL },         /* no rule: any params */
    { "count", "[7]", NULL },
    { "count", "[]", EXPECTED_N },
    { "count", "[1, 2]", EXPECTED_N },
    { "count", "[\"7\"]", EXPECTED_N },
    { "count", "[-1]", EXPECTED_N },
    { "count", "[1.5]", EXPECTED_N },
    { "u32", "[4294967295]", NULL },
    { "u32", "[4294967296]", EXPECTED_N },
    { "outcome", "[[1]]", NULL },
    { "outcome", "[[1], {}]", NULL },
    { "outcome", "[]", REJECTED },
    { "outcome", "[5]", REJECTED },
    { "outcome", "[[1], 5]", REJECTED },
    { "outcome", "[[1], {}, 3]", REJECTED },
};

START_TEST(params_are_checked_against_the_row_before_the_handler)
{
    const char *error, *result;

    ck_assert_int_eq(dispatch(rule_cases[_i].method, rule_cases[_i].params), 0);
    response(&error, &result);
    if (rule_cases[_i].error == NULL) {
        ck_assert_uint_eq(seen.calls, 1);
        ck_assert_str_eq(error, "null");
        ck_assert_str_eq(result, "true");
    } else {
        ck_assert_uint_eq(seen.calls, 0);
        ck_assert_str_eq(error, h_canon(rule_cases[_i].error));
        ck_assert_str_eq(result, "null");
    }
}
END_TEST

START_TEST(handler_gets_each_param_found)
{
    const char *error, *result;

    ck_assert_int_eq(dispatch("outcome", "[[1, \"a\"], {\"t\": 2}]"), 0);
    response(&error, &result);
    ck_assert_uint_eq(seen.n, 2);
    ck_assert_str_eq(seen.param[0], h_canon("[1, \"a\"]"));
    ck_assert_str_eq(seen.param[1], h_canon("{\"t\": 2}"));
}
END_TEST

START_TEST(unknown_method_gets_an_error_naming_it)
{
    const char *error, *result;

    ck_assert_int_eq(dispatch("frobnicate", "[]"), 0);
    response(&error, &result);
    ck_assert_uint_eq(seen.calls, 0);
    ck_assert_str_eq(error, "\"unknown method: frobnicate\"");
    ck_assert_str_eq(result, "null");
}
END_TEST

START_TEST(request_without_a_msgid_closes_the_connection)
{
    ck_assert_int_eq(ctl_dispatch(&fake_client, "\x93\x00\x01\xa1x", 5), -1);
    ck_assert_uint_eq(fake_client.out.len, 0);
    ck_assert_uint_eq(seen.calls, 0);
}
END_TEST

/* Every row of the real table names a unique method and a handler, and
 * says what is wrong when its rule can refuse params. */
START_TEST(real_method_rows_are_well_formed)
{
    for (size_t i = 0; i < ctl_nmethods; i++) {
        const struct ctl_method *m = &ctl_methods[i];
        int can_refuse = m->min_params > 0 || m->max_params != CTL_ANY_COUNT;

        ck_assert_ptr_nonnull(m->name);
        ck_assert_ptr_nonnull(m->handler);
        ck_assert_uint_le(m->min_params, m->max_params);
        for (int k = 0; k < CTL_MAX_PARAMS; k++)
            can_refuse |= m->shape[k] != CTL_ANY;
        ck_assert_msg(!can_refuse || m->usage != NULL, "%s: no usage text", m->name);
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(ctl_methods[j].name, m->name);
    }
}
END_TEST

/* A request over the frame limits is answered from its first bytes as its
 * method would refuse it: a submit method's "rejected" outcome, "job too
 * large"; any other, or one whose method cannot be read, an error string. */
START_TEST(oversized_request_is_answered_as_its_method_refuses)
{
    const char *error, *result;

    ctl_refuse_oversized(&fake_client, 7, "outcome", 7, "too many objects");
    response(&error, &result);
    ck_assert_str_eq(error, h_canon("{\"id\": null, \"kind\": \"rejected\", "
                                    "\"detail\": \"job too large\"}"));
    ck_assert_str_eq(result, "null");
    fp_outq_clear(&fake_client.out);
    ctl_refuse_oversized(&fake_client, 7, "plain", 5, "frame too large");
    response(&error, &result);
    ck_assert_str_eq(error, "\"bad request: frame too large\"");
    fp_outq_clear(&fake_client.out);
    ctl_refuse_oversized(&fake_client, 7, NULL, 0, "frame too large");
    response(&error, &result);
    ck_assert_str_eq(error, "\"bad request: frame too large\"");
    ck_assert_uint_eq(seen.calls, 0);
}
END_TEST

/* ========================================================================
 * The status and metrics bodies, however many workers and limits
 * ======================================================================== */

#define MANY_WORKERS 5000
#define MANY_LIMITS  3000

static fp_worker_info many_workers[MANY_WORKERS];
static fp_limit_info many_limits[MANY_LIMITS];
static char limit_keys[MANY_LIMITS][FP_MAX_KEY_BYTES + 1];

static void
fill_many(void)
{
    for (size_t i = 0; i < MANY_WORKERS; i++)
        many_workers[i] = (fp_worker_info){ .pid = (pid_t)(100000 + i),
                                            .state = "idle", .jobs_done = i };
    for (size_t i = 0; i < MANY_LIMITS; i++) {
        /* Longest keys, with the characters that need escaping. */
        memset(limit_keys[i], 'k', FP_MAX_KEY_BYTES);
        int n = snprintf(limit_keys[i], sizeof limit_keys[i], "\"q\\%zu\n", i);
        limit_keys[i][n] = 'k';
        limit_keys[i][FP_MAX_KEY_BYTES] = '\0';
        many_limits[i] = (fp_limit_info){ .key = limit_keys[i], .rate = 1,
                                          .burst = 2, .tokens = 0.5,
                                          .waiting = i };
    }
}

START_TEST(status_lists_every_worker_and_limit)
{
    fp_stats st = { .workers = MANY_WORKERS, .idle = MANY_WORKERS };
    struct ctl_status_input in = {
        .stats = &st, .workers = many_workers, .nworkers = MANY_WORKERS,
        .limits = many_limits, .nlimits = MANY_LIMITS, .max_job_bytes = 12345,
        .clients = { .connected = 3, .behind = 1, .reply_bytes = 987654 },
    };
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;

    fill_many();
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ctl_pack_status(&pk, &in);
    msgpack_unpacked_init(&u);
    size_t off = 0;
    ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(off, sb.size);
    const msgpack_object *pids = h_get(&u.data, "pids");
    const msgpack_object *rows = h_get(&u.data, "worker_list");
    const msgpack_object *lims = h_get(&u.data, "limits");
    ck_assert(pids != NULL && pids->type == MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(pids->via.array.size, MANY_WORKERS);
    ck_assert_int_eq(pids->via.array.ptr[MANY_WORKERS - 1].via.i64,
                     100000 + MANY_WORKERS - 1);
    ck_assert(rows != NULL && rows->type == MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(rows->via.array.size, MANY_WORKERS);
    ck_assert_int_eq(h_get_int(&rows->via.array.ptr[MANY_WORKERS - 1], "jobs_done"),
                     MANY_WORKERS - 1);
    ck_assert(lims != NULL && lims->type == MSGPACK_OBJECT_MAP);
    ck_assert_uint_eq(lims->via.map.size, MANY_LIMITS);
    ck_assert_int_eq(h_get_int(&u.data, "max_job_bytes"), 12345);
    ck_assert_int_eq(h_get_int(&u.data, "workers"), MANY_WORKERS);
    const msgpack_object *clients = h_get(&u.data, "clients");
    ck_assert(clients != NULL && clients->type == MSGPACK_OBJECT_MAP);
    ck_assert_int_eq(h_get_int(clients, "connected"), 3);
    ck_assert_int_eq(h_get_int(clients, "behind"), 1);
    ck_assert_int_eq(h_get_int(clients, "reply_bytes"), 987654);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* Megabytes of text, every series whole (the fixed part and one line per
 * limit, each key escaped). */
START_TEST(metrics_text_holds_every_limit)
{
    fp_stats st = { .completed = 18446744073709551615ull, .queued = 7 };
    struct fp_buf text = FP_BUF_INIT;
    char want[2 * FP_MAX_KEY_BYTES + 64];

    fill_many();
    for (unsigned i = 0; i < FP_LATENCY_BUCKETS; i++)
        st.latency_count[i] = 18446744073709551615ull;
    ck_assert_int_eq(fp_buf_printf(&text, "prefix\n"), 0);
    ck_assert_int_eq(ctl_metrics_text(&text, &st, many_limits, MANY_LIMITS), 0);
    ck_assert_int_eq(fp_buf_append(&text, "", 1), 0);      /* a C string */
    const char *t = fp_buf_head(&text);
    ck_assert_ptr_nonnull(strstr(t, "prefix\n# HELP forkpool_jobs_total "));
    ck_assert_ptr_nonnull(strstr(t, "\nforkpool_jobs_total{kind=\"ok\"} "
                                    "18446744073709551615\n"));
    ck_assert_ptr_nonnull(strstr(t, "\nforkpool_queue_depth 7\n"));
    ck_assert_ptr_nonnull(strstr(t, "\nforkpool_job_duration_seconds_bucket"
                                    "{le=\"+Inf\"} 18446744073709551615\n"));
    ck_assert_ptr_nonnull(strstr(t, "\nforkpool_job_duration_seconds_count "
                                    "18446744073709551615\n"));
    int lines = 0;
    for (const char *p = t; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    /* 29 lines of fixed text and histogram; the wait and run histograms
     * from the receipts, 2 x (4 + buckets); 13 lines of timeouts, poison
     * and lost events; 2 x (2 help + one per limit). */
    ck_assert_int_eq(lines, 1 + 29 + FP_LATENCY_BUCKETS
                            + 2 * (4 + FP_LATENCY_BUCKETS) + 13
                            + 2 * (2 + MANY_LIMITS));
    /* The last key, "\"q\\2999\n" and 248 k's, escaped. */
    char ks[FP_MAX_KEY_BYTES];
    memset(ks, 'k', sizeof ks);
    snprintf(want, sizeof want, "\nforkpool_rate_limit_waiting{key=\"\\\"q\\\\%d\\n"
             "%.*s\"} %d\n", MANY_LIMITS - 1, FP_MAX_KEY_BYTES - 8, ks,
             MANY_LIMITS - 1);
    ck_assert_msg(strstr(t, want) != NULL, "no line %s", want);
    fp_buf_free(&text);
}
END_TEST

/* ========================================================================
 * The real methods, through the real daemon
 * ======================================================================== */

#define SUBMIT_USAGE "malformed: params must be [job] or [job, options]"
#define BATCH_USAGE  "malformed: params must be [[job, ...]] or [[job, ...], options]"

static const struct {
    const char *method, *params;
    const char *error;      /* as JSON */
} bad_requests[] = {
    { "frobnicate", "[]", "\"unknown method: frobnicate\"" },
    { "cancel", "[]", "\"bad params: expected [id]\"" },
    { "cancel", "[\"x\"]", "\"bad params: expected [id]\"" },
    { "cancel", "[1, 2]", "\"bad params: expected [id]\"" },
    { "scale", "[]", "\"bad params: expected [n]\"" },
    { "scale", "[4294967296]", "\"bad params: expected [n]\"" },
    { "submit", "[]", "{\"id\": null, \"kind\": \"rejected\", \"detail\": \""
                      SUBMIT_USAGE "\"}" },
    { "submit", "[1, 5]", "{\"id\": null, \"kind\": \"rejected\", \"detail\": \""
                          SUBMIT_USAGE "\"}" },
    { "submit_batch", "[5]", "{\"id\": null, \"kind\": \"rejected\", \"detail\": \""
                             BATCH_USAGE "\"}" },
    { "submit_batch", "[[1], {\"bogus\": 1}]",
      "{\"id\": null, \"kind\": \"rejected\", \"detail\": \"malformed: unknown "
      "option (expected timeout, retries, key, expires, notify, progress)\"}" },
};

START_TEST(bad_request_gets_its_error_and_the_connection_goes_on)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_resp *r = h_rpc_call(c, bad_requests[_i].method, bad_requests[_i].params);

    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), h_canon(bad_requests[_i].error));
    ck_assert_str_eq(h_json(r->result), "null");
    ck_assert_int_eq(h_get_int(h_status(c)->result, "submitted"), 0);
    ck_assert_str_eq(h_json(h_submit_ok(c, "[\"after\"]")), "[\"after\"]");
}
END_TEST

START_TEST(methods_without_params_ignore_any_given)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    struct h_rpc *c = h_connected(d);
    struct h_resp *r = h_rpc_call(c, "status", "[1, \"x\"]");

    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), "null");
    ck_assert_int_eq(h_get_int(r->result, "workers"), 1);
    r = h_rpc_call(c, "metrics", "[{}]");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(h_json(r->error), "null");
}
END_TEST

/* ========================================================================
 * forkpoolctl's command rows
 * ======================================================================== */

static const struct {
    const char *args[4];
    int         exit;
    const char *out;        /* all of stdout */
    const char *err;        /* the first line of stderr ("" for none) */
} ctl_cases[] = {
    { { "scale", "2" }, 0, "{\"workers\": 2}\n", "" },
    { { "scale", "x" }, 2, "", "forkpoolctl: scale: 'x' is not a worker count" },
    { { "scale" }, 2, "", "forkpoolctl: scale: expects a worker count" },
    { { "scale", "4294967296" }, 2, "",
      "forkpoolctl: scale: '4294967296' is not a worker count" },
    { { "scale", "5000" }, 1, "",
      "forkpoolctl: scale: cannot scale to 5000 workers: the limit is 1 to 1024" },
    { { "cancel", "99" }, 1, "false\n", "" },
    { { "cancel", "x1" }, 2, "", "forkpoolctl: cancel: 'x1' is not a job id" },
    { { "cancel", "-1" }, 2, "", "forkpoolctl: cancel: unknown option '-1'" },
    { { "reload" }, 0, "", "" },
    { { "reload", "now" }, 2, "", "forkpoolctl: reload: takes no arguments" },
    { { "drain", "--bogus" }, 2, "", "forkpoolctl: drain: unknown option '--bogus'" },
    { { "frobnicate" }, 2, "", "forkpoolctl: unknown command 'frobnicate'" },
};

START_TEST(forkpoolctl_command_row_runs_as_before)
{
    struct h_daemon *d = h_started(h_daemon_start("--builtin", "echo", "-w", "1", NULL));
    char *argv[8];
    struct h_run run;
    size_t n = 0;

    h_need_ctl();
    argv[n++] = (char *)H_FORKPOOLCTL;
    argv[n++] = (char *)"-s";
    argv[n++] = d->sock;
    for (int i = 0; i < 3 && ctl_cases[_i].args[i] != NULL; i++)
        argv[n++] = (char *)ctl_cases[_i].args[i];
    argv[n] = NULL;
    h_run_argv(&run, d, NULL, 10000, argv);
    ck_assert_msg(h_exit_code(run.status) == ctl_cases[_i].exit, "exit %d: %s",
                  h_exit_code(run.status), run.err);
    ck_assert_str_eq(run.out, ctl_cases[_i].out);
    char *nl = strchr(run.err, '\n');
    if (nl != NULL)
        *nl = '\0';
    ck_assert_str_eq(run.err, ctl_cases[_i].err);
}
END_TEST

static Suite *
ctl_commands_suite(void)
{
    Suite *s = suite_create("ctl_commands");
    TCase *tc;

    tc = h_tcase("dispatch", 10);
    tcase_add_checked_fixture(tc, fake_setup, fake_teardown);
    tcase_add_loop_test(tc, params_are_checked_against_the_row_before_the_handler, 0,
                        sizeof(rule_cases) / sizeof(rule_cases[0]));
    tcase_add_test(tc, handler_gets_each_param_found);
    tcase_add_test(tc, unknown_method_gets_an_error_naming_it);
    tcase_add_test(tc, request_without_a_msgid_closes_the_connection);
    tcase_add_test(tc, real_method_rows_are_well_formed);
    tcase_add_test(tc, oversized_request_is_answered_as_its_method_refuses);
    suite_add_tcase(s, tc);

    tc = h_tcase("reports", 20);
    tcase_add_test(tc, status_lists_every_worker_and_limit);
    tcase_add_test(tc, metrics_text_holds_every_limit);
    suite_add_tcase(s, tc);

    tc = h_tcase("methods", 20);
    tcase_add_loop_test(tc, bad_request_gets_its_error_and_the_connection_goes_on, 0,
                        sizeof(bad_requests) / sizeof(bad_requests[0]));
    tcase_add_test(tc, methods_without_params_ignore_any_given);
    suite_add_tcase(s, tc);

    tc = h_tcase("forkpoolctl", 20);
    tcase_add_loop_test(tc, forkpoolctl_command_row_runs_as_before, 0,
                        sizeof(ctl_cases) / sizeof(ctl_cases[0]));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return h_run_suite(ctl_commands_suite());
}
