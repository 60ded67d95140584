'use strict';
// Preloaded with `node --require` into dynalite. dynalite rethrows every error of an incoming
// request (`req.on('error', (err) => { throw err })`), so one client that gives up on a request
// while sending its body (an SDK attempt that timed out, a worker killed with SIGKILL) crashes
// the whole server, and every test after it fails. Such an error concerns that one connection
// only: it is logged and the server goes on. Any other uncaught error still ends the process.
const CONNECTION_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

process.on('uncaughtException', (err) => {
  if (err && (CONNECTION_ERRORS.has(err.code) || err.message === 'aborted')) {
    console.error(`dynalite: a client aborted its request (${err.code || err.message}); going on`);
    return;
  }
  console.error(err);
  process.exit(1);
});
