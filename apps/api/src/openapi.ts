import { z } from 'zod';
import { jobSpecSchema, jobStatusSchema, scheduleSpecSchema } from '@detq/core';

const errorBody = {
  type: 'object',
  properties: {
    error: { type: 'string' },
    fields: { type: 'array', items: { type: 'object', properties: { field: { type: 'string' }, message: { type: 'string' } } } },
  },
};

const jobView = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    status: z.toJSONSchema(jobStatusSchema),
    counts: { type: 'object', properties: { total: { type: 'integer' }, done: { type: 'integer' }, failed: { type: 'integer' } } },
    progress: { type: ['number', 'null'] },
    imagesPerSecond: { type: 'number', description: 'images labelled (error records excepted) per second of wall time' },
    eta: { type: ['number', 'null'], description: 'seconds' },
    output: { type: 'string' },
    message: { type: 'string', description: 'e.g. an incremental run that found nothing new left the outputs unchanged' },
  },
};

const json = (schema: object) => ({ content: { 'application/json': { schema } } });
const errors = {
  400: { description: 'invalid request: every invalid field is named', ...json(errorBody) },
  401: { description: 'missing or unknown bearer token', ...json(errorBody) },
  403: { description: 'a URI lies outside the token scopes', ...json(errorBody) },
};

/** The OpenAPI document, generated from the same zod schemas the API validates with. */
export function openApiDocument(): object {
  return {
    openapi: '3.1.0',
    info: { title: 'detq API', version: '0.1.0' },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        JobSpec: z.toJSONSchema(jobSpecSchema, { io: 'input' }),
        ScheduleSpec: z.toJSONSchema(scheduleSpecSchema, { io: 'input' }),
        JobView: jobView,
        Error: errorBody,
      },
    },
    security: [{ bearer: [] }],
    paths: {
      '/v1/jobs': {
        post: {
          summary: 'Enqueue an image-set job',
          requestBody: { required: true, ...json({ $ref: '#/components/schemas/JobSpec' }) },
          responses: {
            202: { description: 'accepted', ...json({ type: 'object', properties: { id: { type: 'string' }, status: { type: 'string' }, links: { type: 'object' } } }) },
            200: { description: 'the job this idempotency key already created' },
            ...errors,
            409: { description: 'a live job already writes to this output prefix (`runningJob` names it)' },
            413: { description: 'body above the limit' },
          },
        },
        get: {
          summary: 'List jobs, newest first',
          parameters: [
            { name: 'status', in: 'query', schema: z.toJSONSchema(jobStatusSchema) },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 200 } },
            { name: 'cursor', in: 'query', schema: { type: 'string' } },
          ],
          responses: { 200: { description: 'a page of jobs', ...json({ type: 'object', properties: { jobs: { type: 'array', items: { $ref: '#/components/schemas/JobView' } }, next: { type: 'string' } } }) }, ...errors },
        },
      },
      '/v1/jobs/{id}': { get: { summary: 'Job status and progress', responses: { 200: json({ $ref: '#/components/schemas/JobView' }), 404: { description: 'no such job' } } } },
      '/v1/jobs/{id}/cancel': { post: { summary: 'Cancel a job', responses: { 200: { description: 'cancelled' }, 404: { description: 'no such job' }, 409: { description: 'already ended' } } } },
      '/v1/jobs/{id}/events': { get: { summary: 'Server-sent events: progress, then end', responses: { 200: { description: 'text/event-stream' } } } },
      '/v1/schedules': {
        post: { summary: 'Add or replace a schedule', requestBody: { required: true, ...json({ $ref: '#/components/schemas/ScheduleSpec' }) }, responses: { 201: { description: 'created' }, ...errors } },
        get: { summary: 'List schedules', responses: { 200: { description: 'schedules' } } },
      },
      '/v1/schedules/{id}': { delete: { summary: 'Remove a schedule', responses: { 204: { description: 'removed' }, 404: { description: 'no such schedule' } } } },
      '/healthz': { get: { security: [], summary: 'The process is up', responses: { 200: { description: 'ok' } } } },
      '/readyz': { get: { security: [], summary: 'Redis and S3 are reachable', responses: { 200: { description: 'ready' }, 503: { description: 'not ready' } } } },
      '/metrics': { get: { security: [], summary: 'Prometheus metrics', responses: { 200: { description: 'text/plain' } } } },
    },
  };
}
