/* Being written: issue 17. */
#include "whsig.h"
