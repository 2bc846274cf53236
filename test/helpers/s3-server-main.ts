// Runs startS3Server() in its own process (see startS3ServerProcess): prints the endpoint as one JSON line,
// stops on SIGTERM.
import { startS3Server } from './s3-server';

const server = await startS3Server();
process.stdout.write(`${JSON.stringify({ endpoint: server.endpoint })}\n`);
process.once('SIGTERM', () => void server.stop().finally(() => process.exit(0)));
