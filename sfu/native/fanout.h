/* The native fan-out's interface: what sfu/native/fanout.c defines and sfu/fanout.py calls through cffi.
 *
 * Declared once, here: fanout.c includes this file, and sfu/native/build.py hands it to ffi.cdef.
 * cffi's cdef parses no preprocessor line, so build.py drops every line starting with '#' (the include
 * guard, <stdint.h>) and, as cffi reads it, the FO_TRANSPORT_PRIVATE line becomes "...;": the
 * fields of a transport Python never sees (its libsrtp2 session, address, transport-cc history) are
 * fanout.c's, which defines FO_TRANSPORT_PRIVATE before including this file. Everything else must
 * stay plain declarations that both a C compiler and cffi read.
 */
#ifndef SFU_NATIVE_FANOUT_H
#define SFU_NATIVE_FANOUT_H
#ifndef FO_TRANSPORT_PRIVATE
#error "define FO_TRANSPORT_PRIVATE (the private fields of fo_transport) before including fanout.h"
#endif
#include <stdint.h>

enum { FO_PASS = 3 };  /* passthrough extensions a consumer carries: sfu.extensions.PASSTHROUGH */
enum { FO_SHIFTS = 256 };  /* sequence offset changes kept: sfu.temporal.SeqShifts.KEEP */
enum { FO_REWRITTEN = 1024 };  /* rewritten picture ids kept for NACKs, by our number & 1023 */

typedef struct fo_plane fo_plane;

typedef struct fo_transport {
    int fd;
    uint16_t twcc_seq;
    uint64_t sent_packets, sent_bytes, dropped, send_errors;
    int last_errno;
    FO_TRANSPORT_PRIVATE
} fo_transport;

/* A consumer's VP8 temporal layer filter (sfu.temporal.TemporalFilter, its state field for field) with
 * the consumer's sequence offset changes (SeqShifts) and the picture ids it rewrote (Consumer._rewritten). */
typedef struct fo_temporal {
    int32_t target, current;
    uint8_t dropping, rebase, seen, has_last_pid, has_last_tl0;
    int64_t pid_off, tl0_off;
    int32_t last_pid, last_tl0;
    uint64_t dropped;
    uint8_t shifting;  /* 0: no SeqShifts (Python's None) */
    uint16_t shift_base;
    int32_t shift_n, shift_head;  /* changes kept; index of the oldest */
    uint16_t shift_start[FO_SHIFTS];
    uint16_t shift_off[FO_SHIFTS];
    uint32_t rw_seq[FO_REWRITTEN];  /* our number + 1 (0: none) */
    int32_t rw_pid[FO_REWRITTEN];
    int32_t rw_tl0[FO_REWRITTEN];
} fo_temporal;

typedef struct fo_consumer {
    fo_transport *transport;
    fo_temporal *temporal;  /* NULL: packets pass untouched */
    uint32_t ssrc;
    uint8_t payload_type;
    uint16_t seq_off;
    uint32_t ts_off;
    uint8_t ext;
    uint8_t twcc_id;
    uint8_t abs_id;
    uint8_t mid_len;
    uint8_t mid[18];
    uint8_t pass_ids[FO_PASS];
    uint64_t packets, octets;
} fo_consumer;

fo_plane *fo_plane_new(int batch_max);
void fo_plane_free(fo_plane *p);
int fo_flush(fo_plane *p);
uint64_t fo_plane_syscalls(const fo_plane *p);
fo_transport *fo_transport_new(int profile, const uint8_t *key, int keylen);
fo_transport *fo_transport_adopt(void *session, void *protect);
int fo_transport_target(fo_transport *t, int fd, int family, const uint8_t *ip, int port);
void fo_transport_free(fo_plane *p, fo_transport *t);
int fo_twcc_next(fo_transport *t, double now, uint32_t size);
int fo_twcc_sent(fo_transport *t, int seq, double *at);
void fo_shift_drop(fo_temporal *f, uint16_t seq, uint16_t offset);
int fo_shift_offset_of(const fo_temporal *f, int s);
int fo_send(fo_plane *p, fo_transport *t, const uint8_t *packet, int len);
int fo_fanout(fo_plane *p, fo_consumer **cs, int n, int marker, uint16_t seq, uint32_t ts,
              const uint8_t *payload, int plen, const uint8_t *abs, const uint8_t *pass,
              const uint8_t *pass_len, double now, uint32_t size);

#endif
