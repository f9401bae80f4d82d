/* The forwarding plane's outgoing SRTP and sends, for sfu/fanout.py (built by sfu/native/build.py;
 * the interface is declared in fanout.h).
 *
 * One call per received packet (fo_fanout) writes each consumer's RTP header (SSRC, PT, sequence
 * number, timestamp, the viewer transport's transport-cc number and extension ids: what
 * sfu/consumer.py writes), encrypts it in place with the viewer transport's own libsrtp2 session and
 * queues it; the queue goes out with sendmmsg, one call per socket, when it holds batch_max packets or
 * when Python flushes it (at the end of the fan-out, or after a short interval).
 *
 * Nothing here raises: a packet SRTP refuses or the kernel will not take is dropped and counted on
 * its transport, and the others go on. A transport closed while packets wait drops its own.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* sendmmsg, struct mmsghdr (Python.h defines it already under cffi) */
#endif
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <srtp2/srtp.h>

#define FO_HISTORY 8192 /* sfu.twcc.HISTORY */
#define FO_MASK (FO_HISTORY - 1)
/* The fields of a transport only this file touches; fanout.h declares the ones Python reads. */
/* How a transport's packets are encrypted: srtp_protect's signature, so that a session made by another
 * libsrtp 2 build (pylibsrtp's, on OpenSSL: fo_transport_adopt) is used through that build's function. */
typedef int (*fo_protect_fn)(void *session, void *rtp, int *len);
#define FO_TRANSPORT_PRIVATE \
    srtp_t srtp; /* ours (fo_transport_new), freed with the transport; NULL when adopted */ \
    void *session; \
    fo_protect_fn protect; \
    uint64_t sock_dev, sock_ino; /* the socket behind fd: transports sharing one share a sendmmsg */ \
    struct sockaddr_storage addr; \
    socklen_t addrlen; \
    double sent_at[FO_HISTORY]; \
    uint32_t sent_size[FO_HISTORY];
#include "fanout.h"
#define FO_ROOM (12 + 4 + 3 + 18 + 4 + FO_PASS * 17 + 4 + SRTP_MAX_TRAILER_LEN)

typedef struct fo_msg {
    fo_transport *transport;
    size_t offset;
    int len;
} fo_msg;

struct fo_plane {
    int batch_max;
    int count;
    fo_msg *msgs;
    uint8_t *arena;
    size_t used, cap;
    struct mmsghdr *mm;
    struct iovec *iov;
    char *done;
    fo_transport **owner;  /* per message of the socket being sent */
    uint64_t flushes, syscalls;
};

static int fo_srtp_ready = 0;

static int fo_init(void) {
    if (!fo_srtp_ready) {
        if (srtp_init() != srtp_err_status_ok) return -1;
        fo_srtp_ready = 1;
    }
    return 0;
}

fo_plane *fo_plane_new(int batch_max) {
    if (fo_init() < 0) return NULL;
    if (batch_max < 1) batch_max = 1;
    fo_plane *p = calloc(1, sizeof(fo_plane));
    if (!p) return NULL;
    p->batch_max = batch_max;
    p->msgs = calloc(batch_max, sizeof(fo_msg));
    p->mm = calloc(batch_max, sizeof(struct mmsghdr));
    p->iov = calloc(batch_max, sizeof(struct iovec));
    p->done = calloc(batch_max, 1);
    p->owner = calloc(batch_max, sizeof(fo_transport *));
    p->cap = (size_t)batch_max * 1600;
    p->arena = malloc(p->cap);
    if (!p->msgs || !p->mm || !p->iov || !p->done || !p->owner || !p->arena) {
        free(p->msgs); free(p->mm); free(p->iov); free(p->done); free(p->owner); free(p->arena); free(p);
        return NULL;
    }
    return p;
}

static inline int fo_same_socket(const fo_transport *a, const fo_transport *b) {
    return a->fd == b->fd || (a->sock_ino != 0 && a->sock_ino == b->sock_ino && a->sock_dev == b->sock_dev);
}

/* Sends what is queued: one sendmmsg per socket (packets of a socket keep their order; transports on
 * duplicates of one socket, as a shared UDP port gives, share the call). A packet
 * the kernel refuses (ECONNREFUSED, ENOBUFS, EAGAIN...) is dropped and counted on its transport;
 * the rest of that socket's packets and every other socket's still go. Returns packets sent. */
int fo_flush(fo_plane *p) {
    int sent = 0;
    if (p->count == 0) return 0;
    p->flushes++;
    memset(p->done, 0, p->count);
    for (int i = 0; i < p->count; i++) {
        if (p->done[i]) continue;
        fo_transport *t = p->msgs[i].transport;
        if (t == NULL) { p->done[i] = 1; continue; }  /* closed while queued */
        int fd = t->fd, n = 0;
        for (int j = i; j < p->count; j++) {
            fo_transport *u = p->msgs[j].transport;
            if (p->done[j] || u == NULL || !fo_same_socket(u, t)) continue;
            p->done[j] = 1;
            p->iov[n].iov_base = p->arena + p->msgs[j].offset;
            p->iov[n].iov_len = (size_t)p->msgs[j].len;
            memset(&p->mm[n], 0, sizeof(struct mmsghdr));
            p->mm[n].msg_hdr.msg_name = &u->addr;
            p->mm[n].msg_hdr.msg_namelen = u->addrlen;
            p->mm[n].msg_hdr.msg_iov = &p->iov[n];
            p->mm[n].msg_hdr.msg_iovlen = 1;
            p->owner[n] = u;
            n++;
        }
        int k = 0;
        while (k < n) {
            int r;
            if (fd < 0) { r = -1; errno = EBADF; }
            else { p->syscalls++; r = sendmmsg(fd, &p->mm[k], (unsigned)(n - k), MSG_DONTWAIT); }
            if (r > 0) {
                for (int m = k; m < k + r; m++) {
                    p->owner[m]->sent_packets++;
                    p->owner[m]->sent_bytes += (uint64_t)p->iov[m].iov_len;
                }
                sent += r;
                k += r;
            } else if (r < 0 && errno == EINTR) {
                continue;
            } else {  /* message k failed alone: drop it, go on with the next */
                fo_transport *u = p->owner[k];
                u->send_errors++;
                u->dropped++;
                u->last_errno = errno;
                k++;
            }
        }
    }
    p->count = 0;
    p->used = 0;
    return sent;
}

/* sendmmsg calls made so far (how many packets one call carries: sent packets over this). */
uint64_t fo_plane_syscalls(const fo_plane *p) { return p->syscalls; }

void fo_plane_free(fo_plane *p) {
    if (!p) return;
    p->count = 0;
    free(p->msgs); free(p->mm); free(p->iov); free(p->done); free(p->owner); free(p->arena); free(p);
}

/* A viewer transport's outgoing session: libsrtp2 ``profile`` (srtp_profile_t), key then salt. */
fo_transport *fo_transport_new(int profile, const uint8_t *key, int keylen) {
    srtp_policy_t policy;
    if (fo_init() < 0) return NULL;
    memset(&policy, 0, sizeof(policy));
    if (srtp_crypto_policy_set_from_profile_for_rtp(&policy.rtp, (srtp_profile_t)profile) != srtp_err_status_ok ||
        srtp_crypto_policy_set_from_profile_for_rtcp(&policy.rtcp, (srtp_profile_t)profile) != srtp_err_status_ok)
        return NULL;
    if (keylen != (int)(srtp_profile_get_master_key_length((srtp_profile_t)profile) +
                        srtp_profile_get_master_salt_length((srtp_profile_t)profile)))
        return NULL;
    fo_transport *t = calloc(1, sizeof(fo_transport));
    if (!t) return NULL;
    uint8_t *copy = malloc((size_t)keylen);
    if (!copy) { free(t); return NULL; }
    memcpy(copy, key, (size_t)keylen);
    policy.ssrc.type = ssrc_any_outbound;
    policy.key = copy;
    policy.window_size = 1024;
    policy.allow_repeat_tx = 1;
    policy.next = NULL;
    srtp_err_status_t st = srtp_create(&t->srtp, &policy);
    memset(copy, 0, (size_t)keylen);
    free(copy);
    if (st != srtp_err_status_ok) { free(t); return NULL; }
    t->session = t->srtp;
    t->protect = (fo_protect_fn)srtp_protect;
    t->fd = -1;
    return t;
}

/* A transport whose outgoing session another libsrtp 2 build made (``session``, an srtp_t of that
 * build) and whose packets that build's srtp_protect (``protect``) encrypts. The caller keeps the
 * session alive until fo_transport_free and frees it after. */
fo_transport *fo_transport_adopt(void *session, void *protect) {
    if (session == NULL || protect == NULL) return NULL;
    fo_transport *t = calloc(1, sizeof(fo_transport));
    if (!t) return NULL;
    t->session = session;
    t->protect = (fo_protect_fn)protect;
    t->fd = -1;
    return t;
}

/* Where the transport's packets go: the nominated pair's socket and the viewer's address. */
int fo_transport_target(fo_transport *t, int fd, int family, const uint8_t *ip, int port) {
    memset(&t->addr, 0, sizeof(t->addr));
    if (family == 4) {
        struct sockaddr_in *a = (struct sockaddr_in *)&t->addr;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        memcpy(&a->sin_addr, ip, 4);
        t->addrlen = sizeof(*a);
    } else if (family == 6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&t->addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        memcpy(&a->sin6_addr, ip, 16);
        t->addrlen = sizeof(*a);
    } else {
        t->fd = -1;
        t->sock_dev = t->sock_ino = 0;
        return -1;
    }
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0) {
        t->sock_dev = (uint64_t)st.st_dev;
        t->sock_ino = (uint64_t)st.st_ino;
    } else {
        t->sock_dev = t->sock_ino = 0;
    }
    t->fd = fd;
    return 0;
}

/* Closes a transport: its queued packets are dropped (counted nowhere: it is gone), its session freed. */
void fo_transport_free(fo_plane *p, fo_transport *t) {
    if (!t) return;
    if (p) {
        for (int i = 0; i < p->count; i++)
            if (p->msgs[i].transport == t) p->msgs[i].transport = NULL;
    }
    if (t->srtp) srtp_dealloc(t->srtp);
    free(t);
}

/* The next transport-cc number of a transport, recorded with its send time and size. */
int fo_twcc_next(fo_transport *t, double now, uint32_t size) {
    uint16_t s = t->twcc_seq = (uint16_t)(t->twcc_seq + 1);
    t->sent_at[s & FO_MASK] = now;
    t->sent_size[s & FO_MASK] = size;
    return s;
}

static int fo_reserve(fo_plane *p, size_t need) {
    if (p->used + need <= p->cap) return 0;
    if (p->count > 0) fo_flush(p);
    if (need > p->cap) {
        uint8_t *a = realloc(p->arena, need);
        if (!a) return -1;
        p->arena = a;
        p->cap = need;
    }
    return 0;
}

static void fo_queue(fo_plane *p, fo_transport *t, size_t offset, int len) {
    p->msgs[p->count].transport = t;
    p->msgs[p->count].offset = offset;
    p->msgs[p->count].len = len;
    p->count++;
    p->used = offset + (size_t)len;
    p->used = (p->used + 15) & ~(size_t)15;
    if (p->count >= p->batch_max) fo_flush(p);
}

/* Protects and queues one ready RTP packet (a retransmission) on a transport. 0, or -1: dropped. */
int fo_send(fo_plane *p, fo_transport *t, const uint8_t *packet, int len) {
    if (t == NULL) return -1;
    if (len < 12 || fo_reserve(p, (size_t)len + SRTP_MAX_TRAILER_LEN) < 0) { t->dropped++; return -1; }
    size_t off = p->used;
    memcpy(p->arena + off, packet, (size_t)len);
    int out = len;
    if (t->protect(t->session, p->arena + off, &out) != 0) { t->dropped++; return -1; }
    fo_queue(p, t, off, out);
    return 0;
}

static inline void put16(uint8_t *b, uint32_t v) { b[0] = (uint8_t)(v >> 8); b[1] = (uint8_t)v; }
static inline void put32(uint8_t *b, uint32_t v) {
    b[0] = (uint8_t)(v >> 24); b[1] = (uint8_t)(v >> 16); b[2] = (uint8_t)(v >> 8); b[3] = (uint8_t)v;
}

/* A VP8 payload descriptor (RFC 7741) as sfu.temporal.parse reads it; offsets into the payload, -1 absent. */
typedef struct fo_vp8 {
    int start, key, pid, pid_at, pid_bits, tl0, tl0_at, tid, sync;
} fo_vp8;

/* 1 and ``d`` filled, or 0 when the payload is too short to be a descriptor (parse's None). */
static int fo_vp8_parse(const uint8_t *p, int n, fo_vp8 *d) {
    if (n < 1) return 0;
    int b0 = p[0], i = 1;
    d->start = (b0 & 0x10) && (b0 & 0x0F) == 0;
    d->pid = d->pid_at = d->tl0 = d->tl0_at = d->tid = -1;
    d->pid_bits = 0;
    d->sync = 0;
    if (b0 & 0x80) {
        if (n < 2) return 0;
        int x = p[1];
        i = 2;
        if (x & 0x80) {  /* I: picture id */
            if (n <= i) return 0;
            d->pid_at = i;
            if (p[i] & 0x80) {
                if (n <= i + 1) return 0;
                d->pid = ((p[i] & 0x7F) << 8) | p[i + 1];
                d->pid_bits = 15;
                i += 2;
            } else {
                d->pid = p[i];
                d->pid_bits = 7;
                i += 1;
            }
        }
        if (x & 0x40) {  /* L: TL0PICIDX */
            if (n <= i) return 0;
            d->tl0 = p[i];
            d->tl0_at = i;
            i += 1;
        }
        if (x & 0x30) {  /* T or K: TID/Y/KEYIDX */
            if (n <= i) return 0;
            if (x & 0x20) {
                d->tid = p[i] >> 6;
                d->sync = (p[i] & 0x20) != 0;
            }
            i += 1;
        }
    }
    d->key = d->start && n > i && !(p[i] & 0x01);
    return 1;
}

/* TemporalFilter.on_packet for a descriptor with a TID: -1 drop, 0 forward untouched, 1 forward with
 * the picture id ``*pid`` and TL0PICIDX ``*tl0`` written (-1: that field is absent). */
static int fo_temporal_step(fo_temporal *f, const fo_vp8 *d, int *pid, int *tl0) {
    f->seen = 1;
    if (d->start) {
        if (d->key) {
            f->current = f->target;
            if (f->rebase) {
                f->rebase = 0;
                if (f->has_last_pid && d->pid >= 0) f->pid_off = (int64_t)d->pid - ((int64_t)f->last_pid + 1);
                if (f->has_last_tl0 && d->tl0 >= 0) f->tl0_off = (int64_t)d->tl0 - ((int64_t)f->last_tl0 + 1);
            }
        } else if (f->target < f->current) {
            f->current = f->target;
        } else if (f->target > f->current && d->sync && f->current < d->tid && d->tid <= f->target) {
            f->current = d->tid;
        }
        f->dropping = d->tid > f->current;
        if (f->dropping && d->pid >= 0) f->pid_off++;
    }
    if (f->dropping) {
        f->dropped++;
        return -1;
    }
    if (d->pid < 0 && d->tl0 < 0) return 0;
    int64_t mask = d->pid_bits ? ((int64_t)1 << d->pid_bits) - 1 : 0;
    int p = d->pid >= 0 ? (int)(((int64_t)d->pid - f->pid_off) & mask) : -1;
    int t = d->tl0 >= 0 ? (int)(((int64_t)d->tl0 - f->tl0_off) & 0xFF) : -1;
    if (p >= 0) { f->last_pid = p; f->has_last_pid = 1; }
    if (t >= 0) { f->last_tl0 = t; f->has_last_tl0 = 1; }
    if (p == d->pid && t == d->tl0) return 0;
    *pid = p;
    *tl0 = t;
    return 1;
}

/* SeqShifts.drop: publisher packet ``seq`` was dropped, the offset is ``offset`` from ``seq + 1`` on
 * (consecutive drops merge; the oldest change beyond FO_SHIFTS becomes the base). */
void fo_shift_drop(fo_temporal *f, uint16_t seq, uint16_t offset) {
    uint16_t nxt = (uint16_t)(seq + 1);
    if (f->shift_n > 0) {
        int last = (f->shift_head + f->shift_n - 1) % FO_SHIFTS;
        if (f->shift_start[last] == seq) {
            f->shift_start[last] = nxt;
            f->shift_off[last] = offset;
            return;
        }
    }
    if (f->shift_n == FO_SHIFTS) {
        f->shift_base = f->shift_off[f->shift_head];
        f->shift_head = (f->shift_head + 1) % FO_SHIFTS;
        f->shift_n--;
    }
    int at = (f->shift_head + f->shift_n) % FO_SHIFTS;
    f->shift_start[at] = nxt;
    f->shift_off[at] = offset;
    f->shift_n++;
}

/* SeqShifts.offset_of: the offset our number ``s`` was sent with. */
int fo_shift_offset_of(const fo_temporal *f, int s) {
    for (int k = f->shift_n - 1; k >= 0; k--) {
        int at = (f->shift_head + k) % FO_SHIFTS;
        int off = f->shift_off[at];
        if ((((s - off) & 0xFFFF) - f->shift_start[at]) & 0x8000) continue;
        return off;
    }
    return f->shift_base;
}

/* One received packet to ``n`` consumers. ``abs`` is the 3-byte abs-send-time value; ``pass`` holds
 * FO_PASS passthrough values of 16 bytes each, ``pass_len`` their lengths (0: absent). ``now`` and
 * ``size`` are what each transport-cc number records. Returns the packets queued. */
int fo_fanout(fo_plane *p, fo_consumer **cs, int n, int marker, uint16_t seq, uint32_t ts,
              const uint8_t *payload, int plen, const uint8_t *abs, const uint8_t *pass,
              const uint8_t *pass_len, double now, uint32_t size) {
    int queued = 0;
    fo_vp8 d;
    int parsed = -1;  /* the descriptor, read at the first consumer with a temporal filter */
    for (int i = 0; i < n; i++) {
        fo_consumer *c = cs[i];
        fo_transport *t = c->transport;
        if (t == NULL) continue;
        fo_temporal *f = c->temporal;
        int rewrite = 0, pid = -1, tl0 = -1;
        if (f != NULL) {
            if (parsed < 0) parsed = fo_vp8_parse(payload, plen, &d) && d.tid >= 0;
            if (parsed) rewrite = fo_temporal_step(f, &d, &pid, &tl0);
            if (rewrite < 0) {  /* a dropped packet takes no sequence number (Consumer._forward_temporal) */
                if (!f->shifting) {
                    f->shifting = 1;
                    f->shift_base = c->seq_off;
                    f->shift_n = f->shift_head = 0;
                }
                c->seq_off = (uint16_t)(c->seq_off - 1);
                fo_shift_drop(f, seq, c->seq_off);
                continue;
            }
        }
        if (fo_reserve(p, (size_t)plen + FO_ROOM) < 0) { t->dropped++; continue; }
        size_t off = p->used;
        uint8_t *b = p->arena + off;
        b[0] = c->ext ? 0x90 : 0x80;
        b[1] = (uint8_t)(marker | c->payload_type);
        put16(b + 2, (uint16_t)(seq + c->seq_off));
        put32(b + 4, ts + c->ts_off);
        put32(b + 8, c->ssrc);
        int h = 12;
        if (c->ext) {
            uint8_t *e = b + 16;
            int k = 0;
            if (c->twcc_id) {
                uint16_t s = (uint16_t)fo_twcc_next(t, now, size);
                e[k++] = (uint8_t)((c->twcc_id << 4) | 1);
                e[k++] = (uint8_t)(s >> 8);
                e[k++] = (uint8_t)s;
            }
            memcpy(e + k, c->mid, c->mid_len);
            k += c->mid_len;
            if (c->abs_id) {
                e[k++] = (uint8_t)((c->abs_id << 4) | 2);
                e[k++] = abs[0]; e[k++] = abs[1]; e[k++] = abs[2];
            }
            for (int j = 0; j < FO_PASS; j++) {
                int l = pass_len[j];
                if (c->pass_ids[j] && l >= 1 && l <= 16) {
                    e[k++] = (uint8_t)((c->pass_ids[j] << 4) | (l - 1));
                    memcpy(e + k, pass + 16 * j, (size_t)l);
                    k += l;
                }
            }
            while (k & 3) e[k++] = 0;
            b[12] = 0xBE; b[13] = 0xDE;
            put16(b + 14, (uint32_t)(k >> 2));
            h = 16 + k;
        }
        memcpy(b + h, payload, (size_t)plen);
        if (rewrite > 0) {  /* temporal.rewrite, in this copy; kept for NACKs (Consumer._rewritten) */
            uint8_t *q = b + h;
            if (d.pid_at >= 0) {
                if (d.pid_bits == 15) {
                    q[d.pid_at] = (uint8_t)(0x80 | ((pid >> 8) & 0x7F));
                    q[d.pid_at + 1] = (uint8_t)pid;
                } else {
                    q[d.pid_at] = (uint8_t)(pid & 0x7F);
                }
            }
            if (d.tl0_at >= 0) q[d.tl0_at] = (uint8_t)tl0;
            uint16_t s = (uint16_t)(seq + c->seq_off);
            f->rw_seq[s & (FO_REWRITTEN - 1)] = (uint32_t)s + 1;
            f->rw_pid[s & (FO_REWRITTEN - 1)] = pid;
            f->rw_tl0[s & (FO_REWRITTEN - 1)] = tl0;
        }
        int len = h + plen;
        /* a packet SRTP refuses (an index older than its window) is not sent: counted on the transport
         * only, not in the consumer's packets/octets (its sender report), as Consumer.forward */
        if (t->protect(t->session, b, &len) != 0) { t->dropped++; continue; }
        c->packets++;
        c->octets += (uint64_t)plen;
        fo_queue(p, t, off, len);
        queued++;
    }
    return queued;
}

/* The send time and size recorded for a transport-cc number (size 0: nothing recorded). */
int fo_twcc_sent(fo_transport *t, int seq, double *at) {
    *at = t->sent_at[seq & FO_MASK];
    return (int)t->sent_size[seq & FO_MASK];
}
