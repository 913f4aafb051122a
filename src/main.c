/* postern: the gateway daemon and its command-line tools in one binary. */
#include "cli.h"

int main(int argc, char **argv)
{
	return cli_main(argc, argv);
}
