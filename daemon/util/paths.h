/* paths: where an installed or a freshly built kipd finds its files. */
#ifndef KIPD_UTIL_PATHS_H
#define KIPD_UTIL_PATHS_H

/* The default --schema-dir (new string, free()), the first that exists of:
 *   1. <the executable's folder>/../share/kipd/schema: an installed kipd,
 *      wherever its tree was put (a .deb, `meson install --destdir`, dpkg -x);
 *   2. the source tree's schema/, when the executable runs from the build
 *      folder it was built in (a developer's build, never a stale install);
 *   3. <prefix>/share/kipd/schema, compiled in;
 *   4. the source tree's schema/ (kipd then names it in its error).
 * Start-up only: it reads /proc/self/exe and stats folders. */
char *paths_default_schema_dir(void);

#endif
