/*
 * analytics_school.c - placeholder: the school and people tables (analytics.h) arrive
 * with their own change; until then the set is empty.
 */
#include "analytics.h"

const struct an_table an_school_tables[] = { { 0 } };
const size_t an_school_ntables = 0;
