/* Being written: issue 17. */
#include "webhook.h"
