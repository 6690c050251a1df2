/* CPR numbers, dates, date-times, UUIDs and the other format checks. */
#include <string.h>

#include "tap.h"
#include "util/validate.h"

int main(void) {
  char norm[12], birth[11], mask[12];

  tap_ok(validate_cpr("010190-1234", norm, birth), "CPR with hyphen");
  tap_is_str(norm, "010190-1234", "normalised with hyphen");
  tap_is_str(birth, "1990-01-01", "7th digit 1: 1900s");
  tap_ok(validate_cpr("0101901234", norm, NULL), "CPR without hyphen");
  tap_is_str(norm, "010190-1234", "hyphen inserted");
  tap_ok(validate_cpr("290200-4321", norm, birth), "29 Feb 2000 (7th digit 4, year 00)");
  tap_is_str(birth, "2000-02-29", "century from digit 4: 2000s");
  tap_ok(!validate_cpr("290201-4321", norm, NULL), "29 Feb 2001 is not a date");
  tap_ok(!validate_cpr("290200-2321", norm, NULL), "29 Feb 1900 is not a date (digit 2: 1900s)");
  tap_ok(validate_cpr("010158-5000", norm, birth), "digit 5, year 58: 1858");
  tap_is_str(birth, "1858-01-01", "1800s");
  tap_ok(validate_cpr("010137-9000", norm, birth), "digit 9, year 37: 1937");
  tap_is_str(birth, "1937-01-01", "1900s for digit 9 above 36");
  tap_ok(!validate_cpr("320190-1234", norm, NULL), "day 32 rejected");
  tap_ok(!validate_cpr("011390-1234", norm, NULL), "month 13 rejected");
  tap_ok(!validate_cpr("12345", norm, NULL), "too short");
  tap_ok(!validate_cpr("010190-123a", norm, NULL), "letter rejected");
  tap_ok(!validate_cpr("010190 1234", norm, NULL), "space instead of hyphen rejected");
  tap_ok(!validate_cpr("", norm, NULL), "empty rejected");
  validate_cpr_mask("010190-1234", mask);
  tap_is_str(mask, "010190-****", "mask keeps the date part");

  tap_ok(validate_date("2024-02-29"), "leap day 2024");
  tap_ok(!validate_date("2023-02-29"), "no leap day 2023");
  tap_ok(!validate_date("2100-02-29"), "no leap day 2100");
  tap_ok(validate_date("2000-02-29"), "leap day 2000");
  tap_ok(!validate_date("2024-04-31"), "April has 30 days");
  tap_ok(!validate_date("2024-1-01"), "needs two-digit month");
  tap_ok(!validate_date("2024-01-01T00:00:00Z"), "a date-time is not a date");

  tap_ok(validate_datetime("2026-12-01T09:00:00+01:00"), "date-time with offset");
  tap_ok(validate_datetime("2026-12-01T09:00:00Z"), "date-time in UTC");
  tap_ok(validate_datetime("2026-12-01T09:00:00.123456-02:30"), "fraction and negative offset");
  tap_ok(!validate_datetime("2026-12-01T09:00:00"), "no offset rejected");
  tap_ok(!validate_datetime("2026-12-01T24:00:00Z"), "hour 24 rejected");
  tap_ok(!validate_datetime("2026-02-30T10:00:00Z"), "30 Feb rejected");
  tap_ok(!validate_datetime("2026-12-01T09:00:00+1:00"), "short offset rejected");

  tap_ok(validate_uuid("0b6f1a2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"), "UUID");
  tap_ok(!validate_uuid("0b6f1a2c3d4e4f508a6b7c8d9e0f1a2b"), "UUID without hyphens rejected");
  tap_ok(!validate_uuid("0b6f1a2c-3d4e-4f50-8a6b-7c8d9e0f1a2g"), "non-hex rejected");

  tap_ok(validate_email("jens@example.dk"), "e-mail");
  tap_ok(!validate_email("jens@localhost"), "e-mail without a dot in the domain");
  tap_ok(!validate_email("a b@example.dk"), "e-mail with a space");
  tap_ok(validate_username("sygeplejerske.1"), "username");
  tap_ok(!validate_username("Jens"), "upper case rejected");
  tap_ok(!validate_username("ab"), "too short");
  tap_ok(validate_digits("12345678", 8), "CVR digits");
  tap_ok(!validate_digits("1234567", 8), "7 digits are not 8");

  tap_ok(validate_text("Jens Ærø Østergård"), "Danish letters are valid text");
  tap_ok(!validate_text("bad\x01"), "control character rejected");
  tap_ok(!validate_text("\xc3\x28"), "broken UTF-8 rejected");
  tap_ok(!validate_text("\xed\xa0\x80"), "UTF-16 surrogate rejected");
  return tap_done();
}
