/*
 * batch.h - build RecordBatch messages in tests by column name, so a test survives
 * columns being added to the catalogue:
 *   struct h_batch *b = h_batch_new(CAT_HOLLIHOP, "students", run_id);
 *   h_rec(b, raw_json, version_us, 0, "client_id", "7", "first_name", "Иван", NULL);
 *   h_child(b, 0, "first_name", "Мама", NULL);      // child row of the last record
 *   rv = h_batch_send(sock, b, &ack);               // bus_call_ack, 10 s timeout
 */
#ifndef CS_TEST_BATCH_H
#define CS_TEST_BATCH_H

#include <stdint.h>
#include <nng/nng.h>

#include "catalog.h"
#include "crmsync.pb-c.h"

struct h_batch;

struct h_batch *h_batch_new(enum cat_crm crm, const char *entity, int64_t run_id);
void	h_rec(struct h_batch *b, const char *raw, int64_t version_us, int deleted, ...);
void	h_child(struct h_batch *b, unsigned child, ...);
Crmsync__RecordBatch *h_batch_msg(struct h_batch *b);
/* Send until ACK_OK/REJECTED (bus_call_ack). *ack (optional) is freed by the caller (bus_free). */
int	h_batch_send(nng_socket s, struct h_batch *b, Crmsync__Envelope **ack);
void	h_batch_free(struct h_batch *b);

/* RunBegin / RunEnd helpers; return 0 or the bus error. */
int	h_run_begin(nng_socket s, enum cat_crm crm, int full, int64_t *run_id);
int	h_run_end(nng_socket s, int64_t run_id, Crmsync__RunStatus status, const char *entity, int complete);

#endif
