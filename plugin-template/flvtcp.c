/*
 * flvtcp - a complete Rill plugin in C11: FLV over plain TCP.
 *
 *   ingest port: a client sends an FLV stream, e.g.
 *       ffmpeg -re -i in.mp4 -c copy -f flv tcp://127.0.0.1:19350
 *     and it is published into the configured stream.
 *   play port: every client that connects receives that stream as FLV, e.g.
 *       ffplay tcp://127.0.0.1:19351      (or: nc 127.0.0.1 19351 > out.flv)
 *
 * Config (section `plugins.flvtcp` of the host's YAML):
 *   ingest: 127.0.0.1:19350
 *   play: 127.0.0.1:19351
 *   stream: live/test
 *
 * Codecs: H.264 video and AAC audio (what FLV carries without extensions);
 * tags with other codecs are skipped with a warning.
 *
 * Everything the plugin knows of the host is in rill.h. The host owns the
 * sockets: this file is a state machine fed bytes (ingest) and frames
 * (play). Read it top to bottom: helpers, config, the ingest side (FLV
 * demux -> publisher), the play side (subscriber -> FLV mux), then the
 * descriptor that ties the callbacks together.
 */

#include "rill.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FLVTCP_VERSION
#define FLVTCP_VERSION "0.1.0"
#endif

#if defined(__GNUC__)
#define FLVTCP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FLVTCP_PRINTF(a, b)
#endif

enum {
    LISTENER_INGEST = 1,
    LISTENER_PLAY = 2,
};

/* Largest FLV tag body accepted from a publisher (FLV allows 16 MiB). */
#define MAX_TAG_SIZE (8u * 1024u * 1024u)
/* FLV tag header and PreviousTagSize field sizes. */
#define TAG_HEADER_SIZE 11u
#define PREV_SIZE 4u
/* FLV tag types. */
#define TAG_AUDIO 8u
#define TAG_VIDEO 9u
#define TAG_SCRIPT 18u
/* Frame-cache key for "this frame muxed as an FLV tag body" (any value the
 * plugin picks; keys are private to the plugin instance). */
#define CACHE_KEY_TAG_BODY 0x666c767463703031ull /* "flvtcp01" */

/* ---------------------------------------------------------------------- */
/* The instance: one per generation. Read-only after create, so sessions  */
/* on different threads can share it without locks.                       */

typedef struct flvtcp {
    const RillHostApi *api;
    RillHost *host;
    char ingest[128];
    char play[128];
    char stream[256];
} flvtcp;

static void plog(const flvtcp *p, uint32_t level, const char *fmt, ...) FLVTCP_PRINTF(3, 4);

static void plog(const flvtcp *p, uint32_t level, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    int n;
    if (!p->api->log_enabled(p->host, level)) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n >= sizeof buf) {
        n = (int)sizeof buf - 1;
    }
    p->api->log(p->host, level, RILL_STRN(buf, (size_t)n));
}

/* Big-endian readers and writers. */
static uint32_t rd24(const uint8_t *b) {
    return ((uint32_t)b[0] << 16) | ((uint32_t)b[1] << 8) | (uint32_t)b[2];
}

static uint32_t rd32(const uint8_t *b) {
    return ((uint32_t)b[0] << 24) | rd24(b + 1);
}

static void wr24(uint8_t *b, uint32_t v) {
    b[0] = (uint8_t)(v >> 16);
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)v;
}

static void wr32(uint8_t *b, uint32_t v) {
    b[0] = (uint8_t)(v >> 24);
    wr24(b + 1, v);
}

/* ---------------------------------------------------------------------- */
/* Config: the host hands over the YAML text of `plugins.flvtcp`. Its keys */
/* are flat `key: value` lines, so a line scanner is enough here.          */

static void copy_value(char *dst, size_t cap, const char *v, size_t n) {
    /* Trim blanks, drop a trailing comment and surrounding quotes. */
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '#' && (i == 0 || v[i - 1] == ' ' || v[i - 1] == '\t')) {
            n = i;
            break;
        }
    }
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r')) {
        n--;
    }
    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
        v++;
        n -= 2;
    }
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static void parse_config(flvtcp *p, RillStr yaml) {
    const char *s = yaml.ptr;
    size_t len = yaml.len;
    size_t pos = 0;
    snprintf(p->ingest, sizeof p->ingest, "%s", "127.0.0.1:19350");
    snprintf(p->play, sizeof p->play, "%s", "127.0.0.1:19351");
    snprintf(p->stream, sizeof p->stream, "%s", "live/test");
    while (s != NULL && pos < len) {
        const char *line = s + pos;
        const char *nl = (const char *)memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        const char *colon = (const char *)memchr(line, ':', n);
        pos += n + 1;
        if (colon == NULL || line[0] == '#' || line[0] == ' ' || line[0] == '\t') {
            continue; /* comments, nested keys and junk are not ours */
        }
        size_t klen = (size_t)(colon - line);
        const char *val = colon + 1;
        size_t vlen = n - klen - 1;
        if (klen == 6 && memcmp(line, "ingest", 6) == 0) {
            copy_value(p->ingest, sizeof p->ingest, val, vlen);
        } else if (klen == 4 && memcmp(line, "play", 4) == 0) {
            copy_value(p->play, sizeof p->play, val, vlen);
        } else if (klen == 6 && memcmp(line, "stream", 6) == 0) {
            copy_value(p->stream, sizeof p->stream, val, vlen);
        }
    }
}

/* ---------------------------------------------------------------------- */
/* Sessions: one per connection. The host never runs two callbacks of one */
/* session at once, so a session needs no lock.                           */

typedef enum { SESSION_INGEST, SESSION_PLAY } session_kind;

typedef struct session {
    flvtcp *p;
    RillConn *conn;
    session_kind kind;

    /* ingest: FLV demux state and the publisher */
    RillPublisher *pub;
    int32_t video_track; /* -1 until declared */
    int32_t audio_track;
    int header_done;
    uint8_t *in;   /* unconsumed input */
    size_t in_len; /* bytes in `in` */
    size_t in_cap;
    int warned_codec;

    /* play: subscriber and mux state */
    RillSubscriber *sub;
    int have_base;
    int64_t base_dts; /* µs of the first media frame: FLV time 0 */
    int blocked;      /* conn_write said RILL_FULL: wait for on_conn_writable */
    int need_key;     /* video frames were dropped: resume at a keyframe */
} session;

static session *session_new(flvtcp *p, RillConn *conn, session_kind kind) {
    session *s = (session *)calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->p = p;
    s->conn = conn;
    s->kind = kind;
    s->video_track = -1;
    s->audio_track = -1;
    return s;
}

static void session_free(session *s) {
    const RillHostApi *api = s->p->api;
    if (s->pub != NULL) {
        api->publisher_close(s->pub);
    }
    if (s->sub != NULL) {
        api->subscriber_close(s->sub);
    }
    free(s->in);
    free(s);
}

/* ---------------------------------------------------------------------- */
/* Ingest: FLV bytes in, frames out.                                       */

/* Publishes `len` bytes at `data` as a frame of `track`. */
static int32_t publish_frame(session *s, int32_t track, uint32_t codec, uint32_t flags,
                             int64_t dts_us, int64_t pts_us, const uint8_t *data, size_t len) {
    const RillHostApi *api = s->p->api;
    RillFrameInfo info = {.struct_size = sizeof(RillFrameInfo),
                          .track = (uint32_t)track,
                          .codec = codec,
                          .flags = flags,
                          .pts = pts_us,
                          .dts = dts_us};
    /* frame_copy = frame_alloc + memcpy + frame_freeze in one call. */
    RillFrame *f = api->frame_copy(s->p->host, data, len, &info);
    int32_t rc;
    if (f == NULL) {
        return RILL_ERR_NOMEM;
    }
    if (codec == RILL_CODEC_METADATA) {
        rc = api->publisher_set_metadata(s->pub, f);
    } else {
        rc = api->publisher_write(s->pub, f); /* the host takes its own reference */
    }
    api->frame_release(f);
    return rc;
}

static int32_t add_track(session *s, uint32_t kind, uint32_t codec, uint32_t rate,
                         uint32_t channels) {
    RillTrackInfo t = {.struct_size = sizeof(RillTrackInfo),
                       .kind = kind,
                       .codec = codec,
                       .sample_rate = rate,
                       .channels = channels};
    int32_t id = s->p->api->publisher_add_track(s->pub, &t);
    if (id < 0) {
        plog(s->p, RILL_LOG_ERROR, "add track: %s", rill_status_str(id));
    }
    return id;
}

static void warn_codec(session *s, const char *what, unsigned id) {
    if (!s->warned_codec) {
        s->warned_codec = 1;
        plog(s->p, RILL_LOG_WARN, "%s codec id %u is not supported by flvtcp; skipping such tags",
             what, id);
    }
}

static int32_t on_video_tag(session *s, int64_t dts, const uint8_t *b, uint32_t n) {
    if (n == 0) {
        return RILL_OK;
    }
    unsigned frame_type = b[0] >> 4;
    unsigned codec_id = b[0] & 0x0f;
    if ((b[0] & 0x80) != 0 || codec_id != 7) { /* 0x80: Enhanced RTMP/FLV */
        warn_codec(s, "video", codec_id);
        return RILL_OK;
    }
    if (frame_type == 5) {
        return RILL_OK; /* video info/command frame */
    }
    if (n < 5) {
        return RILL_ERR_PROTOCOL;
    }
    unsigned packet_type = b[1];
    int32_t cts = (int32_t)(rd24(b + 2) << 8) >> 8; /* signed 24-bit, ms */
    if (s->video_track < 0) {
        s->video_track = add_track(s, RILL_TRACK_VIDEO, RILL_CODEC_H264, 0, 0);
        if (s->video_track < 0) {
            return s->video_track;
        }
    }
    switch (packet_type) {
    case 0: /* AVCDecoderConfigurationRecord */
        return publish_frame(s, s->video_track, RILL_CODEC_H264, RILL_FRAME_CONFIG, dts, dts,
                             b + 5, n - 5);
    case 1: /* length-prefixed NAL units, as the host wants them */
        return publish_frame(s, s->video_track, RILL_CODEC_H264,
                             frame_type == 1 ? RILL_FRAME_KEY : 0, dts,
                             dts + (int64_t)cts * 1000, b + 5, n - 5);
    default: /* 2: end of sequence */
        return RILL_OK;
    }
}

static const uint32_t AAC_RATES[16] = {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050,
                                       16000, 12000, 11025, 8000,  7350,  0,     0,     0};

static int32_t on_audio_tag(session *s, int64_t dts, const uint8_t *b, uint32_t n) {
    if (n == 0) {
        return RILL_OK;
    }
    unsigned format = b[0] >> 4;
    if (format != 10) {
        warn_codec(s, "audio", format);
        return RILL_OK;
    }
    if (n < 2) {
        return RILL_ERR_PROTOCOL;
    }
    if (b[1] == 0) { /* AudioSpecificConfig */
        if (s->audio_track < 0) {
            uint32_t rate = 0, channels = 0;
            if (n >= 4) {
                rate = AAC_RATES[((b[2] & 0x07) << 1) | (b[3] >> 7)];
                channels = (b[3] >> 3) & 0x0f;
            }
            s->audio_track = add_track(s, RILL_TRACK_AUDIO, RILL_CODEC_AAC, rate, channels);
            if (s->audio_track < 0) {
                return s->audio_track;
            }
        }
        return publish_frame(s, s->audio_track, RILL_CODEC_AAC, RILL_FRAME_CONFIG | RILL_FRAME_KEY,
                             dts, dts, b + 2, n - 2);
    }
    if (s->audio_track < 0) {
        return RILL_OK; /* raw AAC before its config: undecodable, skip */
    }
    return publish_frame(s, s->audio_track, RILL_CODEC_AAC, RILL_FRAME_KEY, dts, dts, b + 2,
                         n - 2);
}

static int32_t on_script_tag(session *s, const uint8_t *b, uint32_t n) {
    /* "@setDataFrame" (as RTMP publishers send it) wraps onMetaData: drop it. */
    static const uint8_t set_data_frame[] = "\x02\x00\x0d@setDataFrame";
    static const uint8_t on_meta_data[] = "\x02\x00\x0aonMetaData";
    if (n >= sizeof set_data_frame - 1 &&
        memcmp(b, set_data_frame, sizeof set_data_frame - 1) == 0) {
        b += sizeof set_data_frame - 1;
        n -= (uint32_t)(sizeof set_data_frame - 1);
    }
    if (n < sizeof on_meta_data - 1 || memcmp(b, on_meta_data, sizeof on_meta_data - 1) != 0) {
        return RILL_OK; /* other script data (cue points, ...) is not forwarded */
    }
    return publish_frame(s, (int32_t)RILL_METADATA_TRACK, RILL_CODEC_METADATA, RILL_FRAME_CONFIG,
                         0, 0, b, n);
}

/* Parses as much of the buffered input as is complete. */
static int32_t ingest_parse(session *s) {
    size_t off = 0;
    int32_t rc = RILL_OK;
    while (rc >= 0) {
        const uint8_t *b = s->in + off;
        size_t avail = s->in_len - off;
        if (!s->header_done) {
            /* "FLV", version, flags, header size (>= 9), PreviousTagSize0 */
            if (avail < 9) {
                break;
            }
            if (b[0] != 'F' || b[1] != 'L' || b[2] != 'V') {
                plog(s->p, RILL_LOG_WARN, "ingest from " RILL_STR_FMT ": not an FLV stream",
                     RILL_STR_ARG(s->p->api->conn_peer_addr(s->conn)));
                return RILL_ERR_PROTOCOL;
            }
            uint32_t hsize = rd32(b + 5);
            if (hsize < 9 || hsize > 1024) {
                return RILL_ERR_PROTOCOL;
            }
            if (avail < (size_t)hsize + PREV_SIZE) {
                break;
            }
            off += hsize + PREV_SIZE;
            s->header_done = 1;
            continue;
        }
        if (avail < TAG_HEADER_SIZE) {
            break;
        }
        uint32_t type = b[0];
        uint32_t size = rd24(b + 1);
        int64_t dts = (int64_t)(rd24(b + 4) | ((uint32_t)b[7] << 24)) * 1000; /* ms -> µs */
        if ((type & 0x20) != 0) {
            plog(s->p, RILL_LOG_WARN, "encrypted FLV tags are not supported");
            return RILL_ERR_PROTOCOL;
        }
        if (size > MAX_TAG_SIZE) {
            plog(s->p, RILL_LOG_WARN, "FLV tag of %u bytes is over the %u-byte limit", size,
                 MAX_TAG_SIZE);
            return RILL_ERR_PROTOCOL;
        }
        if (avail < TAG_HEADER_SIZE + (size_t)size + PREV_SIZE) {
            break;
        }
        const uint8_t *body = b + TAG_HEADER_SIZE;
        switch (type & 0x1f) {
        case TAG_VIDEO:
            rc = on_video_tag(s, dts, body, size);
            break;
        case TAG_AUDIO:
            rc = on_audio_tag(s, dts, body, size);
            break;
        case TAG_SCRIPT:
            rc = on_script_tag(s, body, size);
            break;
        default:
            break; /* unknown tag types are skipped, as FLV allows */
        }
        off += TAG_HEADER_SIZE + (size_t)size + PREV_SIZE;
    }
    /* Keep the incomplete rest for the next call. */
    if (off > 0) {
        memmove(s->in, s->in + off, s->in_len - off);
        s->in_len -= off;
    }
    return rc;
}

static int32_t ingest_data(session *s, const uint8_t *data, size_t len) {
    /* The buffer never holds more than one whole unit (header or tag), so it
     * stays bounded by `limit`; after each parse there is room again. */
    const size_t limit = TAG_HEADER_SIZE + MAX_TAG_SIZE + PREV_SIZE;
    while (len > 0) {
        size_t room = limit - s->in_len;
        size_t chunk = len < room ? len : room;
        if (s->in_len + chunk > s->in_cap) {
            size_t cap = s->in_cap ? s->in_cap : 65536;
            while (cap < s->in_len + chunk) {
                cap *= 2;
            }
            if (cap > limit) {
                cap = limit;
            }
            uint8_t *grown = (uint8_t *)realloc(s->in, cap);
            if (grown == NULL) {
                return RILL_ERR_NOMEM;
            }
            s->in = grown;
            s->in_cap = cap;
        }
        memcpy(s->in + s->in_len, data, chunk);
        s->in_len += chunk;
        data += chunk;
        len -= chunk;
        int32_t rc = ingest_parse(s);
        if (rc < 0) {
            return rc;
        }
    }
    return RILL_OK;
}

/* ---------------------------------------------------------------------- */
/* Play: frames in, FLV bytes out.                                         */

static const uint8_t FLV_FILE_HEADER[13] = {'F', 'L', 'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0};

/* The FLV tag type for a frame, or 0 when flvtcp cannot mux it. */
static uint32_t tag_type_of(uint32_t codec) {
    if (codec == RILL_CODEC_H264) {
        return TAG_VIDEO;
    }
    if (codec == RILL_CODEC_AAC) {
        return TAG_AUDIO;
    }
    if (codec == RILL_CODEC_METADATA) {
        return TAG_SCRIPT;
    }
    return 0;
}

/*
 * Muxes a frame into the part of its FLV tag that is the same for every
 * viewer: the tag body (codec prefix + payload) followed by PreviousTagSize.
 * Only the 11-byte tag header differs per viewer (its timestamp), so the
 * body is built once per frame, cached on the frame, and sent to every
 * viewer with conn_write_frame: no per-viewer copy of the payload.
 */
static RillFrame *tag_body(const flvtcp *p, const RillFrame *frame, const RillFrameInfo *fi) {
    const RillHostApi *api = p->api;
    RillFrame *cached = api->frame_cache_get(p->host, frame, CACHE_KEY_TAG_BODY);
    if (cached != NULL) {
        return cached; /* another viewer muxed it already */
    }
    RillBytes payload = api->frame_data(frame);
    uint8_t prefix[5];
    size_t plen = 0;
    if (fi->codec == RILL_CODEC_H264) {
        int64_t cts = (fi->pts - fi->dts) / 1000;
        prefix[0] = (fi->flags & RILL_FRAME_KEY) || (fi->flags & RILL_FRAME_CONFIG) ? 0x17 : 0x27;
        prefix[1] = (fi->flags & RILL_FRAME_CONFIG) ? 0 : 1;
        wr24(prefix + 2, (uint32_t)(int32_t)cts & 0xffffffu);
        plen = 5;
    } else if (fi->codec == RILL_CODEC_AAC) {
        prefix[0] = 0xaf; /* AAC; FLV says the rest of the byte is always 0xf */
        prefix[1] = (fi->flags & RILL_FRAME_CONFIG) ? 0 : 1;
        plen = 2;
    }
    size_t data_size = plen + payload.len;
    if (data_size > 0xffffffu) {
        return NULL;
    }
    /* alloc -> fill -> freeze: the bytes are written once, into host memory. */
    uint8_t *out = NULL;
    RillFrameBuf *buf = api->frame_alloc(p->host, data_size + PREV_SIZE, &out);
    if (buf == NULL) {
        return NULL;
    }
    memcpy(out, prefix, plen);
    if (payload.len > 0) {
        memcpy(out + plen, payload.ptr, payload.len);
    }
    wr32(out + data_size, (uint32_t)(TAG_HEADER_SIZE + data_size));
    RillFrame *body = api->frame_freeze(buf, data_size + PREV_SIZE, NULL);
    if (body != NULL) {
        /* RILL_ERR_BUSY means another viewer cached one first: ours is as good. */
        (void)api->frame_cache_set(p->host, frame, CACHE_KEY_TAG_BODY, body);
    }
    return body;
}

static int32_t play_frame(session *s, const RillFrame *frame) {
    const RillHostApi *api = s->p->api;
    RillFrameInfo fi = {.struct_size = sizeof(RillFrameInfo)};
    int32_t rc = api->frame_info(frame, &fi);
    if (rc < 0) {
        return rc;
    }
    uint32_t type = tag_type_of(fi.codec);
    if (type == 0) {
        return RILL_OK; /* a codec FLV (without extensions) cannot carry */
    }
    int is_config = (fi.flags & RILL_FRAME_CONFIG) != 0;
    int is_video = fi.codec == RILL_CODEC_H264;
    if (s->blocked && !is_config) {
        /* Over the high-water mark (the host normally stops pushing before
         * this happens): drop media; video then resumes at a keyframe. Config
         * frames are small and needed, so they still go out. */
        if (is_video) {
            s->need_key = 1;
        }
        return RILL_OK;
    }
    if (is_video && !is_config && s->need_key) {
        if (!(fi.flags & RILL_FRAME_KEY)) {
            return RILL_OK; /* undecodable without the frames we dropped */
        }
        s->need_key = 0;
    }

    /* FLV timestamps are ms from this viewer's first media frame. */
    int64_t ts = 0;
    if (!is_config && !s->have_base) {
        s->have_base = 1;
        s->base_dts = fi.dts;
    }
    if (s->have_base && fi.dts > s->base_dts) {
        ts = (fi.dts - s->base_dts) / 1000;
    }
    if (type == TAG_SCRIPT) {
        ts = 0;
    }

    RillFrame *body = tag_body(s->p, frame, &fi);
    if (body == NULL) {
        return RILL_ERR_NOMEM;
    }
    RillBytes bb = api->frame_data(body);
    uint8_t hdr[TAG_HEADER_SIZE];
    hdr[0] = (uint8_t)type;
    wr24(hdr + 1, (uint32_t)(bb.len - PREV_SIZE));
    wr24(hdr + 4, (uint32_t)ts & 0xffffffu);
    hdr[7] = (uint8_t)((uint32_t)ts >> 24);
    wr24(hdr + 8, 0);

    /* One tag = header (copied, 11 bytes) + shared body (zero-copy). Once the
     * first part is queued, the second is always accepted: RILL_FULL only asks
     * us to stop after this tag. */
    rc = api->conn_write(s->conn, hdr, sizeof hdr);
    if (rc >= 0) {
        int32_t rc2 = api->conn_write_frame(s->conn, body);
        rc = rc2 < 0 ? rc2 : (rc == RILL_FULL ? RILL_FULL : rc2);
    }
    api->frame_release(body);
    if (rc == RILL_ERR_AGAIN) {
        /* Not queued (we wrote past RILL_FULL): wait, then resume cleanly. */
        s->blocked = 1;
        if (is_video) {
            s->need_key = 1;
        }
        return RILL_OK;
    }
    if (rc == RILL_FULL) {
        s->blocked = 1;
        return RILL_OK;
    }
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Callbacks.                                                              */

static int32_t cb_create(const RillHostApi *api, RillHost *host, void **instance) {
    /* This plugin uses only ABI 1.0 calls, all present in any v1 host. */
    if (api == NULL || api->abi_major != RILL_ABI_MAJOR ||
        !RILL_HAS_FN(RillHostApi, api, post)) {
        return RILL_ERR_UNSUPPORTED;
    }
    flvtcp *p = (flvtcp *)calloc(1, sizeof *p);
    if (p == NULL) {
        return RILL_ERR_NOMEM;
    }
    p->api = api;
    p->host = host;
    parse_config(p, api->config(host));

    int32_t rc = api->listen(host, RILL_STRN(p->ingest, strlen(p->ingest)), LISTENER_INGEST, 0);
    if (rc < 0) {
        plog(p, RILL_LOG_ERROR, "cannot listen for ingest on %s: %s", p->ingest,
             rill_status_str(rc));
        free(p);
        return rc;
    }
    rc = api->listen(host, RILL_STRN(p->play, strlen(p->play)), LISTENER_PLAY, 0);
    if (rc < 0) {
        plog(p, RILL_LOG_ERROR, "cannot listen for play on %s: %s", p->play,
             rill_status_str(rc));
        free(p);
        return rc;
    }
    plog(p, RILL_LOG_INFO, "flvtcp %s: ingest %s, play %s, stream %s", FLVTCP_VERSION, p->ingest,
         p->play, p->stream);
    *instance = p;
    return RILL_OK;
}

static void cb_drain(void *instance) {
    flvtcp *p = (flvtcp *)instance;
    plog(p, RILL_LOG_INFO, "draining: a newer flvtcp took over");
}

static void cb_destroy(void *instance) {
    free(instance);
}

static int32_t cb_conn_open(void *instance, RillConn *conn, uint32_t listener_id,
                            void **session_user) {
    flvtcp *p = (flvtcp *)instance;
    const RillHostApi *api = p->api;
    RillStr path = RILL_STRN(p->stream, strlen(p->stream));
    int32_t rc;
    session *s;

    if (listener_id != LISTENER_INGEST && listener_id != LISTENER_PLAY) {
        return RILL_ERR_INVALID;
    }
    s = session_new(p, conn, listener_id == LISTENER_INGEST ? SESSION_INGEST : SESSION_PLAY);
    if (s == NULL) {
        return RILL_ERR_NOMEM;
    }
    if (s->kind == SESSION_INGEST) {
        rc = api->publish_open(p->host, conn, path, RILL_STR(""), &s->pub);
        if (rc < 0) {
            plog(p, RILL_LOG_WARN, "refusing ingest from " RILL_STR_FMT ": publish %s: %s",
                 RILL_STR_ARG(api->conn_peer_addr(conn)), p->stream, rill_status_str(rc));
            session_free(s);
            return rc;
        }
        plog(p, RILL_LOG_INFO, "publishing %s from " RILL_STR_FMT, p->stream,
             RILL_STR_ARG(api->conn_peer_addr(conn)));
    } else {
        /* NULL options: the host's defaults (wait for a publisher, start at
         * the newest keyframe with metadata and config frames first). */
        rc = api->subscribe_open(p->host, conn, path, RILL_STR(""), NULL, &s->sub);
        if (rc < 0) {
            session_free(s);
            return rc;
        }
        rc = api->conn_write(conn, FLV_FILE_HEADER, sizeof FLV_FILE_HEADER);
        if (rc < 0) {
            session_free(s);
            return rc;
        }
    }
    *session_user = s;
    return RILL_OK;
}

static int32_t cb_conn_data(void *instance, void *session_user, RillConn *conn,
                            const uint8_t *data, size_t len) {
    session *s = (session *)session_user;
    (void)instance;
    (void)conn;
    if (s->kind == SESSION_PLAY) {
        return RILL_OK; /* viewers have nothing to say; ignore it */
    }
    return ingest_data(s, data, len);
}

static int32_t cb_conn_writable(void *instance, void *session_user, RillConn *conn) {
    session *s = (session *)session_user;
    (void)instance;
    (void)conn;
    s->blocked = 0;
    return RILL_OK;
}

static void cb_conn_close(void *instance, void *session_user, RillConn *conn, uint32_t reason,
                          RillStr why) {
    session *s = (session *)session_user;
    flvtcp *p = (flvtcp *)instance;
    (void)conn;
    if (s->kind == SESSION_INGEST) {
        plog(p, RILL_LOG_INFO, "ingest of %s ended (%u: " RILL_STR_FMT ")", p->stream, reason,
             RILL_STR_ARG(why));
    }
    session_free(s);
}

static int32_t cb_frame(void *instance, void *session_user, RillSubscriber *sub,
                        const RillFrame *frame) {
    (void)instance;
    (void)sub;
    return play_frame((session *)session_user, frame);
}

static int32_t cb_subscribe_end(void *instance, void *session_user, RillSubscriber *sub,
                                uint32_t reason, RillStr why) {
    session *s = (session *)session_user;
    flvtcp *p = (flvtcp *)instance;
    plog(p, RILL_LOG_DEBUG, "viewer's subscription ended (%u: " RILL_STR_FMT ")", reason,
         RILL_STR_ARG(why));
    p->api->subscriber_close(sub);
    s->sub = NULL;
    /* An FLV-over-TCP viewer has nothing more to receive: end the session. */
    return p->api->conn_close(s->conn, RILL_END_NORMAL);
}

static int32_t cb_publish_end(void *instance, void *session_user, RillPublisher *pub,
                              uint32_t reason, RillStr why) {
    session *s = (session *)session_user;
    flvtcp *p = (flvtcp *)instance;
    plog(p, RILL_LOG_INFO, "publisher of %s ended by the host (%u: " RILL_STR_FMT ")", p->stream,
         reason, RILL_STR_ARG(why));
    p->api->publisher_close(pub);
    s->pub = NULL;
    return p->api->conn_close(s->conn, reason);
}

/* ---------------------------------------------------------------------- */
/* The descriptor and the one exported symbol.                             */

static const RillPluginDescriptor DESCRIPTOR = {
    .magic = RILL_PLUGIN_MAGIC,
    .struct_size = sizeof(RillPluginDescriptor),
    .abi_major = RILL_ABI_MAJOR,
    .abi_minor = RILL_ABI_MINOR,
    .flags = 0,
    .name = RILL_STR_INIT("flvtcp"),
    .version = RILL_STR_INIT(FLVTCP_VERSION),
    .description = RILL_STR_INIT("FLV over plain TCP: ingest on one port, play on another"),
    .create = cb_create,
    .drain = cb_drain,
    .destroy = cb_destroy,
    .on_conn_open = cb_conn_open,
    .on_conn_data = cb_conn_data,
    .on_conn_writable = cb_conn_writable,
    .on_conn_close = cb_conn_close,
    .on_frame = cb_frame,
    .on_subscribe_end = cb_subscribe_end,
    .on_publish_end = cb_publish_end,
};

RILL_EXPORT const RillPluginDescriptor *rill_plugin_entry_v1(uint32_t host_major,
                                                             uint32_t host_minor) {
    (void)host_minor; /* any 1.x host has every call this plugin uses */
    return host_major == RILL_ABI_MAJOR ? &DESCRIPTOR : NULL;
}
