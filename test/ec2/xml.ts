// The XML EC2 answers with: a response document per action, in the namespace of the API
// version asked for, and the error document every action shares:
//   <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>
// Lists are wrapper elements holding one <item> per member, as in every EC2 response.

/** A fragment that is already XML, so it is never escaped twice. */
export interface Xml {
  readonly xml: string;
}

type Child = Xml | string | number | boolean | undefined;

/** Members of an element or a response body; undefined ones are left out. */
export type Part = Xml | undefined;

/** Characters XML 1.0 cannot carry even as references; replaced so a document always parses. */
const NOT_XML_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

export function escapeXml(text: string): string {
  return text
    .replace(NOT_XML_CHAR, '\uFFFD')
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&apos;');
}

const raw = (xml: string): Xml => ({ xml });

/** An element; text children are escaped, undefined ones left out. No children: `<name/>`. */
export function el(name: string, ...children: Child[]): Xml {
  const inner = children
    .filter((child): child is Exclude<Child, undefined> => child !== undefined)
    .map((child) => (typeof child === 'object' ? child.xml : escapeXml(String(child))))
    .join('');
  return raw(inner === '' ? `<${name}/>` : `<${name}>${inner}</${name}>`);
}

/** An element only when it has a value: EC2 leaves out what does not apply. */
export function opt(name: string, value: string | number | boolean | undefined): Xml | undefined {
  return value === undefined ? undefined : el(name, value);
}

/** A list: `<name><item>…</item>…</name>`, each item given as its members. */
export function itemSet(name: string, items: readonly (readonly Child[])[]): Xml {
  return el(name, ...items.map((members) => el('item', ...members)));
}

/** EC2 names its namespace after the API version the request asked for. */
export function ec2Namespace(version: string): string {
  return `http://ec2.amazonaws.com/doc/${version}/`;
}

const PROLOG = '<?xml version="1.0" encoding="UTF-8"?>\n';

export function responseDocument(action: string, version: string, requestId: string, body: readonly Part[]): string {
  const inner = body.map((part) => part?.xml ?? '').join('');
  return (
    `${PROLOG}<${action}Response xmlns="${escapeXml(ec2Namespace(version))}">` +
    `<requestId>${escapeXml(requestId)}</requestId>${inner}</${action}Response>`
  );
}

export function errorDocument(code: string, message: string, requestId: string): string {
  return (
    `${PROLOG}<Response><Errors><Error><Code>${escapeXml(code)}</Code>` +
    `<Message>${escapeXml(message)}</Message></Error></Errors>` +
    `<RequestID>${escapeXml(requestId)}</RequestID></Response>`
  );
}
