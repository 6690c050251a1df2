#include "tap.h"
int main(void) { tap_plan(0); return tap_done(); }
