/* Filled in by issue 18 work. */
