/*
 * errors.h - the crmsync error codes.
 *
 * Functions return int: 0 on success, otherwise a positive CS_E* code from errors.def.
 * cs_strerror() turns a code into a short human text (never NULL).
 */
#ifndef CS_ERRORS_H
#define CS_ERRORS_H

enum cs_err {
	CS_OK = 0,
#define ERR(name, text) CS_E##name,
#include "errors.def"
#undef ERR
	CS_E_MAX
};

const char *cs_strerror(int err);

#endif
