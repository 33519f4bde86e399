/*
 * check_worker_life.c — the worker lifecycle table (src/engine/worker_life.c),
 * driven without forking: every state x event pair acts or is explicitly
 * ignored, and the paths a worker really takes lead where they should.
 */
#include "config.h"
#include <check.h>
#include <stdlib.h>

#include "engine/worker_life.h"

/* Every cell is decided, and leads to a real state. */
START_TEST(every_cell_acts_or_is_explicitly_ignored)
{
    enum fp_wstate s = (enum fp_wstate)(_i / WE_COUNT);
    enum fp_wevent e = (enum fp_wevent)(_i % WE_COUNT);
    const struct fp_wcell *c = fp_wlife_cell(s, e);

    ck_assert_msg(c->action != WA_UNDECIDED && c->action < WA_COUNT,
                  "%s + %s: undecided", fp_wstate_name(s), fp_wevent_name(e));
    ck_assert_msg(c->next < WS_COUNT, "%s + %s: no next state",
                  fp_wstate_name(s), fp_wevent_name(e));
}
END_TEST

/* An ignored event changes nothing: it leaves the state as it was. */
START_TEST(ignored_events_keep_the_state)
{
    enum fp_wstate s = (enum fp_wstate)(_i / WE_COUNT);
    enum fp_wevent e = (enum fp_wevent)(_i % WE_COUNT);
    const struct fp_wcell *c = fp_wlife_cell(s, e);

    if (c->action == WA_IGNORE)
        ck_assert_msg(c->next == s, "%s + %s: ignored, yet moves to %s",
                      fp_wstate_name(s), fp_wevent_name(e), fp_wstate_name(c->next));
}
END_TEST

START_TEST(out_of_range_lookups_are_holes)
{
    ck_assert_int_eq(fp_wlife_cell(WS_COUNT, WE_READY)->action, WA_UNDECIDED);
    ck_assert_int_eq(fp_wlife_cell(WS_READY, WE_COUNT)->action, WA_UNDECIDED);
    ck_assert_str_eq(fp_wstate_name(WS_COUNT), "?");
}
END_TEST

/* Follow a path of events from `s`; returns the state reached and the
 * action of the last step in *last. */
static enum fp_wstate
walk(enum fp_wstate s, const enum fp_wevent *evs, size_t n, enum fp_waction *last)
{
    for (size_t i = 0; i < n; i++) {
        const struct fp_wcell *c = fp_wlife_cell(s, evs[i]);
        *last = c->action;
        s = c->next;
    }
    return s;
}

struct path {
    const char      *name;
    enum fp_wstate   from;
    enum fp_wevent   evs[6];
    size_t           n;
    enum fp_wstate   to;
    enum fp_waction  last;
};

static const struct path paths[] = {
    { "a normal life", WS_WAITING,
      { WE_SPAWNED, WE_READY, WE_RESULT, WE_STOP, WE_EXITED }, 5, WS_DEAD, WA_REAP },
    { "ready reports readiness", WS_STARTING, { WE_READY }, 1, WS_READY, WA_NOTE_READY },
    { "a second ready is a protocol error", WS_READY, { WE_READY }, 1,
      WS_KILLED, WA_PROTOCOL_ERROR },
    { "a result before ready is a protocol error", WS_STARTING, { WE_RESULT }, 1,
      WS_KILLED, WA_PROTOCOL_ERROR },
    { "progress before ready is a protocol error", WS_STARTING, { WE_PROGRESS }, 1,
      WS_KILLED, WA_PROTOCOL_ERROR },
    { "a working worker reports progress", WS_READY, { WE_PROGRESS, WE_PROGRESS }, 2,
      WS_READY, WA_PROGRESS },
    { "a retiring worker reports progress", WS_RETIRING, { WE_PROGRESS }, 1,
      WS_RETIRING, WA_PROGRESS },
    { "a killed worker's progress is not read", WS_KILLED, { WE_PROGRESS }, 1,
      WS_KILLED, WA_IGNORE },
    { "a dead worker's last progress counts", WS_READY, { WE_EXITED, WE_PROGRESS }, 2,
      WS_DEAD, WA_PROGRESS },
    { "retiring finishes the window, then stops", WS_READY,
      { WE_RETIRE, WE_RESULT, WE_WINDOW_EMPTY }, 3, WS_STOPPING, WA_SEND_EOF },
    { "a retiring worker takes its results", WS_RETIRING, { WE_RESULT }, 1,
      WS_RETIRING, WA_DELIVER },
    { "a stop that overstays its grace is a kill", WS_STOPPING,
      { WE_GRACE_EXPIRED }, 1, WS_KILLED, WA_SIGKILL },
    { "a killed worker is not killed twice", WS_READY, { WE_KILL, WE_KILL }, 2,
      WS_KILLED, WA_IGNORE },
    { "a killed worker is read only once dead", WS_KILLED, { WE_RESULT }, 1,
      WS_KILLED, WA_IGNORE },
    { "a dead worker's last results count", WS_READY, { WE_EXITED, WE_RESULT }, 2,
      WS_DEAD, WA_DELIVER },
    { "a dead worker is never signalled", WS_DEAD, { WE_KILL }, 1, WS_DEAD, WA_IGNORE },
    { "a dead slot starts again", WS_DEAD, { WE_SPAWNED }, 1, WS_STARTING, WA_ENTER },
    { "a failed fork waits", WS_DEAD, { WE_SPAWN_FAILED }, 1, WS_WAITING, WA_ENTER },
    { "a backoff ends in a start", WS_WAITING, { WE_BACKOFF_EXPIRED }, 1,
      WS_WAITING, WA_START_DUE },
    { "a stop cancels a pending restart", WS_WAITING, { WE_STOP }, 1,
      WS_WAITING, WA_CANCEL_BACKOFF },
    { "a starting worker retired is stopped", WS_STARTING, { WE_RETIRE }, 1,
      WS_STOPPING, WA_SEND_EOF },
    { "a stopped starting worker may still say ready", WS_STOPPING, { WE_READY }, 1,
      WS_STOPPING, WA_IGNORE },
    { "an idle ready worker ignores an empty window", WS_READY, { WE_WINDOW_EMPTY }, 1,
      WS_READY, WA_IGNORE },
    { "a start past its deadline is a failed start, killed", WS_STARTING,
      { WE_START_EXPIRED }, 1, WS_KILLED, WA_START_TIMEOUT },
    { "a start past its deadline, then its death", WS_WAITING,
      { WE_SPAWNED, WE_START_EXPIRED, WE_EXITED }, 3, WS_DEAD, WA_REAP },
    { "a ready worker has no start deadline", WS_STARTING,
      { WE_READY, WE_START_EXPIRED }, 2, WS_READY, WA_IGNORE },
    { "stopped before ready, still not gone by the deadline", WS_STARTING,
      { WE_STOP, WE_START_EXPIRED }, 2, WS_KILLED, WA_STOP_OVERDUE },
};

START_TEST(paths_lead_where_they_should)
{
    const struct path *p = &paths[_i];
    enum fp_waction last = WA_UNDECIDED;
    enum fp_wstate to = walk(p->from, p->evs, p->n, &last);

    ck_assert_msg(to == p->to && last == p->last, "%s: reached %s by %s, want %s by %s",
                  p->name, fp_wstate_name(to), fp_waction_name(last),
                  fp_wstate_name(p->to), fp_waction_name(p->last));
}
END_TEST

/* Whatever happens to a live worker, its exit is always noticed. */
START_TEST(every_live_state_reaps_on_exit)
{
    static const enum fp_wstate live[] = {
        WS_STARTING, WS_READY, WS_RETIRING, WS_STOPPING, WS_KILLED,
    };
    for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
        const struct fp_wcell *c = fp_wlife_cell(live[i], WE_EXITED);
        ck_assert_msg(c->action == WA_REAP && c->next == WS_DEAD,
                      "%s + exited", fp_wstate_name(live[i]));
    }
}
END_TEST

/* A start deadline kills only a worker that has never been ready. */
START_TEST(start_deadline_acts_only_before_ready)
{
    for (int st = 0; st < WS_COUNT; st++) {
        const struct fp_wcell *c = fp_wlife_cell(st, WE_START_EXPIRED);
        if (st == WS_STARTING || st == WS_STOPPING)
            ck_assert_msg(c->next == WS_KILLED, "%s + start expired", fp_wstate_name(st));
        else
            ck_assert_msg(c->action == WA_IGNORE, "%s + start expired", fp_wstate_name(st));
    }
}
END_TEST

/* Every protocol error ends in a kill. */
START_TEST(protocol_errors_always_kill)
{
    for (int s = 0; s < WS_COUNT; s++)
        for (int e = 0; e < WE_COUNT; e++) {
            const struct fp_wcell *c = fp_wlife_cell(s, e);
            if (c->action == WA_PROTOCOL_ERROR)
                ck_assert_int_eq(c->next, WS_KILLED);
        }
}
END_TEST

static Suite *
worker_life_suite(void)
{
    Suite *s = suite_create("worker_life");
    TCase *tc = tcase_create("table");

    tcase_add_loop_test(tc, every_cell_acts_or_is_explicitly_ignored, 0,
                        WS_COUNT * WE_COUNT);
    tcase_add_loop_test(tc, ignored_events_keep_the_state, 0, WS_COUNT * WE_COUNT);
    tcase_add_test(tc, out_of_range_lookups_are_holes);
    tcase_add_loop_test(tc, paths_lead_where_they_should, 0,
                        (int)(sizeof(paths) / sizeof(paths[0])));
    tcase_add_test(tc, every_live_state_reaps_on_exit);
    tcase_add_test(tc, protocol_errors_always_kill);
    tcase_add_test(tc, start_deadline_acts_only_before_ready);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(worker_life_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
