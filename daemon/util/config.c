#include "util/config.h"
void config_defaults(kipd_config_t *cfg) { (void)cfg; }
