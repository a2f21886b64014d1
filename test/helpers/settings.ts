/** A complete Settings value for pure tests (desired(), container specs): nothing here is contacted. */
import type { Settings } from '../../controller/settings.js';

export const testSettings: Settings = {
  postgres: { host: '127.0.0.1', port: 25432, user: 'codeb_admin', password: 'x', database: 'postgres' },
  redis: { host: '127.0.0.1', port: 26379, user: 'default', password: 'x', databases: 16 },
  storage: { endPoint: '127.0.0.1', port: 29000, useSSL: false, accessKey: 'AK', secretKey: 'SK', region: 'us-east-1', kind: 's3rver' },
  caddy: { adminUrl: 'http://127.0.0.1:22019', httpPort: 28080, httpsPort: 28443 },
  podman: { socketPath: '/tmp/podman.sock' },
  forwarder: { socketPath: '/tmp/forwarder.sock', routerSocket: '/tmp/router.sock' },
  network: { pool: '10.99.0.0/16', servicesAddress: '10.99.0.1', interface: 'cbs00000000' },
};
