/* Passwords: from the terminal with echo off, or one line from stdin
 * (--password-stdin, for scripts). Never from the command line, where ps
 * and the shell's history would show them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "kipctl.h"

#define SECRET_MAX 1024

static char *secret__line(FILE *in) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t n = getline(&line, &cap, in);
  if (n < 0) {
    free(line);
    return NULL;
  }
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = '\0';
  /* Copy into an exact buffer, so secret_free() wipes all of it. */
  char *copy = strdup(line);
  explicit_bzero(line, cap);
  free(line);
  return copy;
}

static char *secret__prompt(FILE *tty, const char *prompt) {
  struct termios old, quiet;
  int fd = fileno(tty);
  if (tcgetattr(fd, &old) != 0)
    return NULL;
  quiet = old;
  quiet.c_lflag &= ~(tcflag_t)ECHO;
  quiet.c_lflag |= ECHONL;
  /* Echo goes off before the prompt shows, so nothing typed after it echoes. */
  if (tcsetattr(fd, TCSANOW, &quiet) != 0)
    return NULL;
  fputs(prompt, tty);
  fflush(tty);
  char *s = secret__line(tty);
  tcsetattr(fd, TCSANOW, &old);
  return s;
}

char *secret_read_password(bool from_stdin) {
  if (from_stdin) {
    char *s = secret__line(stdin);
    if (s == NULL || s[0] == '\0') {
      fprintf(stderr, "kipctl: --password-stdin: no password on stdin\n");
      secret_free(s);
      return NULL;
    }
    return s;
  }
  FILE *tty = fopen("/dev/tty", "r+");
  if (tty == NULL) {
    fprintf(stderr, "kipctl: no terminal to ask for the password; use --password-stdin\n");
    return NULL;
  }
  char *a = secret__prompt(tty, "New password: ");
  char *b = a != NULL ? secret__prompt(tty, "Repeat it: ") : NULL;
  fclose(tty);
  if (a == NULL || b == NULL || strcmp(a, b) != 0 || a[0] == '\0') {
    fprintf(stderr, "kipctl: %s\n", a == NULL || b == NULL ? "no password read"
                                    : a[0] == '\0'        ? "the password is empty"
                                                          : "the passwords differ");
    secret_free(a);
    secret_free(b);
    return NULL;
  }
  secret_free(b);
  return a;
}

void secret_free(char *s) {
  if (s != NULL) {
    explicit_bzero(s, strlen(s));
    free(s);
  }
}
