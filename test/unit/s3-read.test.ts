/** The S3 error answers observe's plain requests turn into errors (controller/providers/s3-read.ts). */
import { describe, expect, it } from 'vitest';
import { responseError } from '../../controller/providers/s3-read.js';
import { s3Error } from '../../controller/providers/storage.js';

describe('responseError', () => {
  it.each<[string, number, string, string, RegExp]>([
    ['an XML error body', 404, '<?xml version="1.0"?><Error><Code>NoSuchBucketPolicy</Code><Message>The bucket policy does not exist</Message></Error>', 'NoSuchBucketPolicy', /^The bucket policy does not exist$/],
    ['entities in the message', 403, '<Error><Code>AccessDenied</Code><Message>Access &apos;denied&apos; &amp; logged</Message></Error>', 'AccessDenied', /^Access 'denied' & logged$/],
    ['a HEAD answer (no body), 403', 403, '', 'AccessDenied', /HTTP 403 \(AccessDenied\)/],
    ['a HEAD answer (no body), 404', 404, '', 'NotFound', /HTTP 404/],
    ['a HEAD answer (no body), other', 500, '', 'HTTP500', /HTTP 500/],
  ])('%s', (_name, status, body, code, message) => {
    const err = responseError(status, body);
    expect(err.code).toBe(code);
    expect(err.status).toBe(status);
    expect(err.message).toMatch(message);
  });

  it('is reported as codeb reports any S3 refusal: a denied key says to check the keys', () => {
    const err = s3Error('127.0.0.1:9000', 'check bucket b', responseError(403, ''));
    expect(err.message).toBe('Object storage (S3) at 127.0.0.1:9000 refused to check bucket b: S3 answered HTTP 403 (AccessDenied)');
    expect((err as { hint?: string }).hint).toMatch(/accessKey\/secretKey/);
  });
});
