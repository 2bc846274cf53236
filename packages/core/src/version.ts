/** detq's version: the CLI's --version, the API's OpenAPI info and every run summary report this one string. */
export const DETQ_VERSION = '0.1.0';
