/* Replays fuzz inputs without libFuzzer, in any build (plain, ASan+UBSan,
 * valgrind): each argument is a file or a folder of files; each file is
 * passed once to LLVMFuzzerTestOneInput(). Prints TAP, one line per input.
 * A crash or a sanitizer report fails the test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay_n;
static int replay_failed;

static void replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    printf("not ok %d - %s: cannot open\n", ++replay_n, path);
    replay_failed++;
    return;
  }
  size_t cap = 4096, len = 0;
  uint8_t *buf = malloc(cap);
  size_t got;
  while (buf != NULL && (got = fread(buf + len, 1, cap - len, f)) > 0) {
    len += got;
    if (len == cap)
      buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  if (buf == NULL)
    abort();
  LLVMFuzzerTestOneInput(buf, len);
  free(buf);
  printf("ok %d - %s (%zu bytes)\n", ++replay_n, path, len);
}

static int replay_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void replay_path(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0)
    return; /* an empty regression folder may be absent */
  if (!S_ISDIR(st.st_mode)) {
    replay_file(path);
    return;
  }
  DIR *d = opendir(path);
  if (d == NULL)
    return;
  char **names = NULL;
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    names = realloc(names, (n + 1) * sizeof(*names));
    size_t plen = strlen(path) + strlen(e->d_name) + 2;
    names[n] = malloc(plen);
    snprintf(names[n], plen, "%s/%s", path, e->d_name);
    n++;
  }
  closedir(d);
  if (n > 0)
    qsort(names, n, sizeof(*names), replay_cmp);
  for (size_t i = 0; i < n; i++) {
    replay_file(names[i]);
    free(names[i]);
  }
  free(names);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  if (LLVMFuzzerInitialize != NULL)
    LLVMFuzzerInitialize(&argc, &argv);
  for (int i = 1; i < argc; i++)
    replay_path(argv[i]);
  if (replay_n == 0)
    printf("ok 1 - no inputs\n"), replay_n = 1;
  printf("1..%d\n", replay_n);
  return replay_failed ? 1 : 0;
}
