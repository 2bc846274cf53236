import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';

type Doc = { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: object }> }> }>> };

/**
 * The API's own OpenAPI document, validated by swagger-parser, and an inject() that checks every
 * JSON answer against the response schema the document gives for its path, method and status.
 */
export async function openApiChecker(app: FastifyInstance) {
  const raw = (await app.inject('/openapi.json')).json();
  await SwaggerParser.validate(structuredClone(raw));
  const doc = (await SwaggerParser.dereference(structuredClone(raw))) as unknown as Doc;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const templates = Object.keys(doc.paths).map((p) => ({ p, re: new RegExp(`^${p.replace(/\{[^}]+\}/g, '[^/]+')}$`) }));
  let checked = 0;
  const inject = async (opts: InjectOptions): Promise<LightMyRequestResponse> => {
    const res = await app.inject(opts);
    const path = String(opts.url).split('?')[0]!;
    const template = templates.find((t) => t.re.test(path));
    expect(template, `${path} is in the OpenAPI document`).toBeDefined();
    const op = doc.paths[template!.p]![String(opts.method ?? 'GET').toLowerCase()];
    expect(op, `${opts.method} ${template!.p} is documented`).toBeDefined();
    const response = op!.responses[String(res.statusCode)];
    expect(response, `${opts.method} ${template!.p} documents ${res.statusCode}`).toBeDefined();
    const schema = response!.content?.['application/json']?.schema;
    if (schema && res.body) {
      const validate = ajv.compile(schema);
      expect(validate(res.json()), `${opts.method} ${path} ${res.statusCode}: ${ajv.errorsText(validate.errors)} in ${res.body}`).toBe(true);
    }
    checked++;
    return res;
  };
  return { doc: raw as Doc, inject, checked: () => checked };
}
