/* agenda: the printable Danish HTML page of a meeting's agenda. */
#ifndef KIPD_API_AGENDA_H
#define KIPD_API_AGENDA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Accept: true when text/html is acceptable (q > 0) and preferred to
 * application/json (a higher q, or the same q and listed first). accept is
 * borrowed and may be NULL. */
bool agenda_wants_html(const char *accept);

/* The page for an agenda document (borrowed), as kip_api.meeting_agenda
 * answers it: new buffer (free()) of *len bytes, or NULL when out of
 * memory. */
char *agenda_render_html(json_t *agenda, size_t *len);

#endif
