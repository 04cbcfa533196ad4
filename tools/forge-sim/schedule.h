/* schedule.h - `forge-sim schedule`: a scheduled trigger fired every
 * --every (default: the interval's period), --count times (0: until
 * Ctrl-C), each delivered with Forge's retry policy (delivery.h).
 *
 * Ownership: the run and the body template are freed before returning.
 * Threads: single-threaded tool.
 */
#ifndef FORGE_SIM_SCHEDULE_H
#define FORGE_SIM_SCHEDULE_H

int cmd_schedule(int argc, char **argv);

#endif
