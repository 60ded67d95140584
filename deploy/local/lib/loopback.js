'use strict';
// Preloaded with `node --require` into each emulator: every TCP server the process opens
// (net, http, https, tls) listens on the loopback address only, whatever host the emulator
// asks for. Unix-socket and handle-based listens are left alone.
const net = require('net');

const HOST = process.env.SHARDHOSE_LOCAL_HOST || '127.0.0.1';
const listen = net.Server.prototype.listen;

function isPort(v) {
  return typeof v === 'number' || (typeof v === 'string' && /^\d+$/.test(v));
}

net.Server.prototype.listen = function loopbackListen(...args) {
  const cb = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
  const first = args[0];
  let opts;
  if (first !== null && typeof first === 'object') {
    // listen(options[, cb]); listen(handle[, backlog][, cb]) is passed through.
    if (first.path !== undefined || first.fd !== undefined || first.handle !== undefined ||
        first._handle !== undefined || typeof first.ref === 'function') {
      return listen.apply(this, cb ? [...args, cb] : args);
    }
    opts = Object.assign({}, first, { host: HOST });
  } else if (first === undefined || isPort(first)) {
    // listen([port[, host[, backlog]]][, cb])
    opts = { port: first === undefined ? 0 : Number(first), host: HOST };
    const backlog = args.slice(1).find((a) => typeof a === 'number');
    if (backlog !== undefined) opts.backlog = backlog;
  } else {
    // listen(path[, backlog][, cb]): a Unix socket or named pipe.
    return listen.apply(this, cb ? [...args, cb] : args);
  }
  return cb ? listen.call(this, opts, cb) : listen.call(this, opts);
};
