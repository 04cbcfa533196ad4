/* ui.h - `forge-sim ui`: one UI invocation (invokeRemote from
 * @forge/bridge) to /forge/subscription: a FIT with principal and context,
 * one POST with a 25 s timeout, never retried (Forge does not retry them).
 *
 * Ownership: nothing outlives the call.
 * Threads: single-threaded tool.
 */
#ifndef FORGE_SIM_UI_H
#define FORGE_SIM_UI_H

int cmd_ui(int argc, char **argv);

#endif
