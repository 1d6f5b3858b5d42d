/*
 * misuse: a test-only C plugin that misuses the host API on purpose
 * (issue 20's fault plugin; tests/tests/plugin_faults.rs builds and loads it).
 *
 * - In `create`, every call that takes a handle is made with NULL (or an id
 *   nothing has) and must be refused or ignored; the plugin logs
 *   `misuse: N of N calls with NULL or unknown handles refused`, or names
 *   the ones the host accepted.
 * - Each connection on `listen` first gets a line saying what two calls made
 *   from a thread of the plugin's own, during `on_conn_open`, returned
 *   (`conn_write` and `publish_open`: the header says only `post`, `log`,
 *   the clocks and `frame_*` are thread-safe; the host refuses the rest),
 *   then has its bytes echoed. `conn_close` is called twice on the last.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"

typedef struct {
    const RillHostApi *api;
    RillHost *host;
} misuse;

static void plog(const misuse *m, uint32_t level, const char *msg) {
    m->api->log(m->host, level, RILL_STRN(msg, strlen(msg)));
}

/* A `listen: <addr>` line of the plugin's YAML section. */
static int config_listen(RillStr yaml, char *out, size_t cap) {
    const char *k = "listen:";
    for (size_t i = 0; i + strlen(k) <= yaml.len; i++) {
        if (memcmp(yaml.ptr + i, k, strlen(k)) != 0) {
            continue;
        }
        size_t j = i + strlen(k), n = 0;
        while (j < yaml.len && (yaml.ptr[j] == ' ' || yaml.ptr[j] == '\'' || yaml.ptr[j] == '"')) {
            j++;
        }
        while (j < yaml.len && yaml.ptr[j] != '\n' && yaml.ptr[j] != ' ' && yaml.ptr[j] != '\'' &&
               yaml.ptr[j] != '"' && n + 1 < cap) {
            out[n++] = yaml.ptr[j++];
        }
        out[n] = 0;
        return n > 0;
    }
    return 0;
}

static int32_t cb_create(const RillHostApi *api, RillHost *host, void **instance) {
    if (api == NULL || api->abi_major != RILL_ABI_MAJOR ||
        !RILL_HAS_FN(RillHostApi, api, metric_set)) {
        return RILL_ERR_UNSUPPORTED;
    }
    misuse *m = (misuse *)calloc(1, sizeof *m);
    if (m == NULL) {
        return RILL_ERR_NOMEM;
    }
    m->api = api;
    m->host = host;

    char accepted[1024] = "";
    int calls = 0, refused = 0;
#define REFUSED(expr)                                                        \
    do {                                                                     \
        calls++;                                                             \
        if ((expr) < 0) {                                                    \
            refused++;                                                       \
        } else if (strlen(accepted) + strlen(#expr) + 3 < sizeof accepted) { \
            strcat(accepted, #expr "; ");                                    \
        }                                                                    \
    } while (0)
#define SURVIVED(stmt) \
    do {               \
        calls++;       \
        stmt;          \
        refused++;     \
    } while (0)
    RillPublisher *pub = NULL;
    RillSubscriber *sub = NULL;
    RillTrackInfo track = {.struct_size = sizeof(RillTrackInfo)};
    RillSubscriberStats stats = {.struct_size = sizeof(RillSubscriberStats)};
    RillFrameInfo finfo = {.struct_size = sizeof(RillFrameInfo)};
    REFUSED(api->publish_open(host, NULL, RILL_STR("live/x"), RILL_STR(""), &pub));
    REFUSED(api->publish_open(NULL, NULL, RILL_STR("live/x"), RILL_STR(""), &pub));
    REFUSED(api->publisher_add_track(NULL, &track));
    REFUSED(api->publisher_write(NULL, NULL));
    REFUSED(api->publisher_set_metadata(NULL, NULL));
    SURVIVED(api->publisher_close(NULL));
    REFUSED(api->subscribe_open(host, NULL, RILL_STR("live/x"), RILL_STR(""), NULL, &sub));
    REFUSED(api->subscriber_stats(NULL, &stats));
    SURVIVED(api->subscriber_close(NULL));
    REFUSED(api->conn_write(NULL, (const uint8_t *)"x", 1));
    REFUSED(api->conn_write_frame(NULL, NULL));
    REFUSED(api->conn_close(NULL, RILL_END_NORMAL));
    REFUSED(api->conn_pause_read(NULL, 1));
    REFUSED(api->http_respond(NULL, 200, NULL, 0, RILL_HTTP_BODY_FIXED, 0));
    REFUSED(api->ws_send(NULL, 1, (const uint8_t *)"x", 1));
    REFUSED(api->udp_send_to(NULL, RILL_STR("127.0.0.1:9"), (const uint8_t *)"x", 1));
    SURVIVED(api->udp_close(NULL));
    REFUSED(api->timer_cancel(host, 0xdeadbeefULL));
    REFUSED(api->post(host, 0xffffffffffffULL, NULL));
    REFUSED(api->file_write(host, 0xdeadULL, 0, (const uint8_t *)"x", 1));
    REFUSED(api->file_close(host, 0xdeadULL, 0));
    REFUSED(api->frame_info(NULL, &finfo));
    REFUSED(api->frame_retain(NULL) == NULL ? -1 : 0);
    REFUSED(api->frame_data(NULL).ptr == NULL ? -1 : 0);
    SURVIVED(api->frame_release(NULL));
    REFUSED(api->listen(NULL, RILL_STR("127.0.0.1:0"), 9, 0));
    REFUSED(api->metric_set(host, RILL_STR("bad name!"), RILL_STR(""), RILL_METRIC_GAUGE, 1.0));
    REFUSED(api->conn_id(NULL) == 0 ? -1 : 0);
    REFUSED(api->conn_peer_addr(NULL).len == 0 ? -1 : 0);
    SURVIVED(api->log(NULL, RILL_LOG_ERROR, RILL_STR("lost")));
#undef REFUSED
#undef SURVIVED
    char line[1300];
    if (refused == calls) {
        snprintf(line, sizeof line,
                 "misuse: %d of %d calls with NULL or unknown handles refused", refused, calls);
    } else {
        snprintf(line, sizeof line, "misuse: %d of %d refused; accepted: %s", refused, calls,
                 accepted);
    }
    plog(m, refused == calls ? RILL_LOG_INFO : RILL_LOG_ERROR, line);

    char addr[128];
    if (!config_listen(api->config(host), addr, sizeof addr)) {
        plog(m, RILL_LOG_ERROR, "misuse: no listen address");
        free(m);
        return RILL_ERR_INVALID;
    }
    int32_t rc = api->listen(host, RILL_STRN(addr, strlen(addr)), 1, 0);
    if (rc < 0) {
        free(m);
        return rc;
    }
    *instance = m;
    return RILL_OK;
}

static void cb_destroy(void *instance) {
    free(instance);
}

typedef struct {
    const misuse *m;
    RillConn *conn;
    int32_t write_status, publish_status;
} thread_calls;

static void *other_thread(void *arg) {
    thread_calls *t = (thread_calls *)arg;
    RillPublisher *pub = NULL;
    t->write_status = t->m->api->conn_write(t->conn, (const uint8_t *)"", 0);
    t->publish_status =
        t->m->api->publish_open(t->m->host, t->conn, RILL_STR("live/misuse"), RILL_STR(""), &pub);
    if (pub != NULL) {
        t->m->api->publisher_close(pub);
    }
    return NULL;
}

static int32_t cb_conn_open(void *instance, RillConn *conn, uint32_t listener_id,
                            void **session_user) {
    (void)listener_id;
    (void)session_user;
    misuse *m = (misuse *)instance;
    thread_calls t = {.m = m, .conn = conn, .write_status = 1, .publish_status = 1};
    pthread_t th;
    if (pthread_create(&th, NULL, other_thread, &t) == 0) {
        pthread_join(th, NULL);
    }
    char line[128];
    int n = snprintf(line, sizeof line, "wrong thread: conn_write %s, publish_open %s\n",
                     rill_status_str(t.write_status), rill_status_str(t.publish_status));
    return m->api->conn_write(conn, (const uint8_t *)line, (size_t)n);
}

static int32_t cb_conn_data(void *instance, void *session_user, RillConn *conn,
                            const uint8_t *data, size_t len) {
    (void)session_user;
    misuse *m = (misuse *)instance;
    if (len >= 5 && memcmp(data, "close", 5) == 0) {
        int32_t first = m->api->conn_close(conn, RILL_END_NORMAL);
        int32_t second = m->api->conn_close(conn, RILL_END_NORMAL);
        char line[96];
        snprintf(line, sizeof line, "misuse: conn_close %s then %s", rill_status_str(first),
                 rill_status_str(second));
        plog(m, RILL_LOG_INFO, line);
        return RILL_OK;
    }
    return m->api->conn_write(conn, data, len);
}

static void cb_conn_close(void *instance, void *session_user, RillConn *conn, uint32_t reason,
                          RillStr why) {
    (void)instance;
    (void)session_user;
    (void)conn;
    (void)reason;
    (void)why;
}

static const RillPluginDescriptor DESCRIPTOR = {
    .magic = RILL_PLUGIN_MAGIC,
    .struct_size = sizeof(RillPluginDescriptor),
    .abi_major = RILL_ABI_MAJOR,
    .abi_minor = RILL_ABI_MINOR,
    .flags = 0,
    .name = RILL_STR_INIT("misuse"),
    .version = RILL_STR_INIT("0.1.0"),
    .description = RILL_STR_INIT("test-only: misuses the host API on purpose"),
    .create = cb_create,
    .destroy = cb_destroy,
    .on_conn_open = cb_conn_open,
    .on_conn_data = cb_conn_data,
    .on_conn_close = cb_conn_close,
};

RILL_EXPORT const RillPluginDescriptor *rill_plugin_entry_v1(uint32_t host_major,
                                                             uint32_t host_minor) {
    (void)host_minor;
    return host_major == RILL_ABI_MAJOR ? &DESCRIPTOR : NULL;
}
