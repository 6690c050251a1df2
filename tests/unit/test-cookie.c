/* Cookie headers: RFC 6265 cookie-pairs, quotes, whitespace, bad values. */
#include <string.h>

#include "tap.h"
#include "util/cookie.h"

int main(void) {
  char v[64];

  tap_is_int(cookie_find("kipd_session=abc", "kipd_session", v, sizeof(v)), 0, "the only cookie");
  tap_is_str(v, "abc", "its value");
  tap_is_int(cookie_find("a=1; kipd_session=abc-_9; b=2", "kipd_session", v, sizeof(v)), 0, "among others");
  tap_is_str(v, "abc-_9", "value between others");
  tap_is_int(cookie_find("a=1;kipd_session=x;b=2", "kipd_session", v, sizeof(v)), 0, "no space after ;");
  tap_is_str(v, "x", "value without spaces");
  tap_is_int(cookie_find("  kipd_session = spaced \t; a=1", "kipd_session", v, sizeof(v)), 0, "whitespace around");
  tap_is_str(v, "spaced", "whitespace trimmed");
  tap_is_int(cookie_find("kipd_session=\"quoted\"", "kipd_session", v, sizeof(v)), 0, "quoted value");
  tap_is_str(v, "quoted", "quotes removed");
  tap_is_int(cookie_find("kipd_session=first; kipd_session=second", "kipd_session", v, sizeof(v)), 0,
             "a repeated name");
  tap_is_str(v, "first", "the first one wins");
  tap_is_int(cookie_find("kipd_session=", "kipd_session", v, sizeof(v)), 0, "empty value");
  tap_is_str(v, "", "empty");
  tap_is_int(cookie_find("xkipd_session=a; kipd_sessionx=b", "kipd_session", v, sizeof(v)), -ENOENT,
             "only a prefix or suffix of the name");
  tap_is_int(cookie_find("Kipd_Session=a", "kipd_session", v, sizeof(v)), -ENOENT, "names are case-sensitive");
  tap_is_int(cookie_find("", "kipd_session", v, sizeof(v)), -ENOENT, "empty header");
  tap_is_int(cookie_find(";;; ; kipd_session=ok;", "kipd_session", v, sizeof(v)), 0, "empty pairs skipped");
  tap_is_str(v, "ok", "after empty pairs");
  tap_is_int(cookie_find("novalue; kipd_session=ok", "kipd_session", v, sizeof(v)), 0, "a pair without =");
  tap_is_int(cookie_find("kipd_session=\"open", "kipd_session", v, sizeof(v)), -EINVAL, "unbalanced quote");
  tap_is_int(cookie_find("kipd_session=a\"b", "kipd_session", v, sizeof(v)), -EINVAL, "quote inside");
  tap_is_int(cookie_find("kipd_session=a b", "kipd_session", v, sizeof(v)), -EINVAL, "space inside");
  tap_is_int(cookie_find("kipd_session=a\\b", "kipd_session", v, sizeof(v)), -EINVAL, "backslash");
  tap_is_int(cookie_find("kipd_session=a,b", "kipd_session", v, sizeof(v)), -EINVAL, "comma");
  tap_is_int(cookie_find("kipd_session=\xc3\xa6", "kipd_session", v, sizeof(v)), -EINVAL, "non-ASCII");
  char small[4];
  tap_is_int(cookie_find("kipd_session=abcd", "kipd_session", small, sizeof(small)), -EINVAL, "too long");
  tap_is_int(cookie_find("kipd_session=abc", "kipd_session", small, sizeof(small)), 0, "just fits");
  tap_is_int(cookie_find(NULL, "kipd_session", v, sizeof(v)), -EINVAL, "no header");
  return tap_done();
}
