'use strict';
// Preloaded with `node --require` into dynalite, and required by kinesalite.js. Both rethrow
// every error of an incoming request (`req.on('error', (err) => { throw err })`), so one client
// that gives up on a request while sending it (an SDK attempt that timed out or was cancelled, a
// worker killed with SIGKILL or stopped mid-call) crashes the whole server, and every test after
// it fails. Such an error concerns that one connection only: it is logged and the server goes
// on. Any other uncaught error still ends the process.
const path = require('path');
const script = process.argv[1] || 'server';
let SERVER = path.basename(script, '.js');
if (['cli', 'index', 'main'].includes(SERVER)) SERVER = path.basename(path.dirname(script)); // dynalite/cli.js

const CONNECTION_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

process.on('uncaughtException', (err) => {
  if (err && (CONNECTION_ERRORS.has(err.code) || err.message === 'aborted')) {
    console.error(`${SERVER}: a client aborted its request (${err.code || err.message}); going on`);
    return;
  }
  console.error(err);
  process.exit(1);
});
