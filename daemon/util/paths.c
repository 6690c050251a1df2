#include "util/paths.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kipd-build.h"

static bool paths__is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The folder holding the running executable, resolved; false if unknown. */
static bool paths__exe_dir(char *out, size_t size) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0 || (size_t)n >= sizeof(exe) - 1)
    return false;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (slash == NULL || (size_t)(slash - exe) >= size)
    return false;
  *slash = '\0';
  snprintf(out, size, "%s", exe[0] != '\0' ? exe : "/");
  return true;
}

static bool paths__under(const char *path, const char *root) {
  char real_root[PATH_MAX];
  if (realpath(root, real_root) == NULL)
    return false;
  size_t n = strlen(real_root);
  return strncmp(path, real_root, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

char *paths_default_schema_dir(void) {
  char exe_dir[PATH_MAX];
  char candidate[PATH_MAX + 64];
  if (paths__exe_dir(exe_dir, sizeof(exe_dir))) {
    snprintf(candidate, sizeof(candidate), "%s/../share/kipd/schema", exe_dir);
    char real[PATH_MAX];
    if (paths__is_dir(candidate) && realpath(candidate, real) != NULL)
      return strdup(real);
    if (paths__under(exe_dir, KIPD_BUILD_ROOT) && paths__is_dir(KIPD_SOURCE_SCHEMA_DIR))
      return strdup(KIPD_SOURCE_SCHEMA_DIR);
  }
  if (paths__is_dir(KIPD_SCHEMA_DIR))
    return strdup(KIPD_SCHEMA_DIR);
  return strdup(KIPD_SOURCE_SCHEMA_DIR);
}
