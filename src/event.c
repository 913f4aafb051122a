/* Being written: issue 17. */
#include "event.h"
