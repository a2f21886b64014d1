/** The commented starter manifest written by `codeb init`. It must validate as written (tested). */
export function starterManifest(projectId: string, schemaRef: string): string {
  return `# yaml-language-server: $schema=${schemaRef}
# codeb project manifest. Every field and its default: docs/manifest.md
apiVersion: codeb/v1

project:
  id: ${projectId}              # lowercase DNS label; names the database, bucket and containers
  name: ${projectId}

environment:
  name: production              # the primary environment
  domain: ${projectId}.localhost   # Caddy routes this domain to the web service
  # aliases: [www.example.com]
  # tls: auto                   # auto (public CA), internal (Caddy's CA) or off; .localhost defaults to off

# Other environments, each with its own ports, database, Redis slot and bucket:
# environments:
#   staging:
#     domain: staging.${projectId}.localhost
#     imageTag: staging

services:
  web:
    type: web                   # web (routed), internal (project-only) or worker (no port)
    image: docker.io/library/${projectId}:latest
    port: 3000                  # the port the container listens on
    # command: ["node", "server.js"]
    # hostPorts: { blue: 3100, green: 3101 }   # default: assigned from 3000-3999
    env:
      NODE_ENV: production
    resources:
      cpu: 0.5
      memory: 256Mi
    healthCheck:
      http:
        path: /api/health       # must answer 200 within 500ms, 3 times in a row
        expectStatus: 200
        timeout: 500ms

features:
  database: true                # Postgres database and role; DATABASE_URL is injected
  cache: true                   # a Redis DB slot and ACL user; REDIS_URL is injected
  storage: true                 # an S3 bucket <base>-uploads; S3_* variables are injected

monitoring:
  checksAfterDeploy: 3

backup:
  enabled: true
  retentionDays: 30

deploy:
  strategy: blue-green
  keepPrevious: 1h              # the old version keeps running this long for an instant rollback
`;
}
