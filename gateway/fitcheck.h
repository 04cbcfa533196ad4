/* fitcheck.h - the FIT of an intake request checked from its header, before
 * the body is read (issue 10: nothing unauthenticated may make the gateway
 * buffer a body). The HTTP side pushes a GW_JOB_INTAKE job with fit_only set
 * (token, req_id, trace_id; no body) into the FIT lane; a worker verifies
 * the token exactly as the full intake would (signature, kid, iss, aud,
 * exp/nbf, app.installationId) and answers through the outbox:
 *   - status GW_FIT_VERDICT_OK (100) with item->claims = the verified claims:
 *     the HTTP side reads the body and hands them on with it (job->fit), so
 *     the intake does not verify twice;
 *   - 401 with the usual refusal body otherwise (counted, logged).
 * Threads: workers.
 */
#ifndef GW_FITCHECK_H
#define GW_FITCHECK_H

#define GW_FIT_VERDICT_OK 100

struct gw_app;
struct gw_job;

void gw_fitcheck_run(struct gw_app *app, struct gw_job *job);

#endif
