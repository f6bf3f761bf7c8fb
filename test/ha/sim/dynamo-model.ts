// A model of one DynamoDB table as the HA code uses it: items keyed by `pk`,
// GetItem / PutItem / UpdateItem / DeleteItem / BatchGetItem with their
// ConditionExpression, UpdateExpression (SET and REMOVE), the 400 KB item
// limit, and the errors the SDK raises (ConditionalCheckFailedException,
// ValidationException, ResourceNotFoundException, ResourceInUseException).
// It is simpler than DynamoDB (one table, no indexes, no capacity) but keeps
// its semantics where the HA pair's safety depends on them: a condition is
// checked against the item as it is when the write is applied, atomically.
// test/ha/sim/dynamo-model.test.ts checks it against dynalite, expression by
// expression.

import type { AttributeValue } from '@aws-sdk/client-dynamodb';

export type Item = Record<string, AttributeValue>;

/** An error the SDK would raise, by name (the store tells them apart by `name`). */
export class ModelError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

const MAX_ITEM_BYTES = 400 * 1024;

// ── expressions ────────────────────────────────────────────────────────────

type Token = { kind: 'name' | 'value' | 'word' | 'op' | 'punct'; text: string };

/** Expressions are few and repeat: each is tokenized once. */
const tokenized = new Map<string, Token[]>();

function tokenize(expression: string): Token[] {
  const known = tokenized.get(expression);
  if (known) return known;
  const tokens: Token[] = [];
  const pattern = /\s*(?:(#[A-Za-z0-9_]+)|(:[A-Za-z0-9_]+)|(<>|<=|>=|=|<|>)|([(),])|([A-Za-z_][A-Za-z0-9_.]*))/y;
  let at = 0;
  while (at < expression.length) {
    if (/^\s*$/.test(expression.slice(at))) break;
    pattern.lastIndex = at;
    const m = pattern.exec(expression);
    if (!m) throw new ModelError('ValidationException', `Invalid expression: unexpected text at ${at}: ${expression.slice(at, at + 20)}`);
    at = pattern.lastIndex;
    if (m[1]) tokens.push({ kind: 'name', text: m[1] });
    else if (m[2]) tokens.push({ kind: 'value', text: m[2] });
    else if (m[3]) tokens.push({ kind: 'op', text: m[3] });
    else if (m[4]) tokens.push({ kind: 'punct', text: m[4] });
    else tokens.push({ kind: 'word', text: m[5]! });
  }
  if (tokenized.size < 1000) tokenized.set(expression, tokens);
  return tokens;
}

interface Context {
  names: Record<string, string>;
  values: Item;
}

type Operand = { path: string } | { value: AttributeValue };
type Condition =
  | { kind: 'and' | 'or'; left: Condition; right: Condition }
  | { kind: 'not'; inner: Condition }
  | { kind: 'exists' | 'not_exists'; path: string }
  | { kind: 'compare'; op: string; left: Operand; right: Operand };

class Parser {
  #at = 0;
  constructor(
    private readonly tokens: Token[],
    private readonly context: Context,
  ) {}

  parseCondition(): Condition {
    const condition = this.#or();
    if (this.#at !== this.tokens.length) throw new ModelError('ValidationException', `Invalid ConditionExpression: unexpected ${this.tokens[this.#at]!.text}`);
    return condition;
  }

  #peek(): Token | undefined {
    return this.tokens[this.#at];
  }

  #next(): Token {
    const token = this.tokens[this.#at++];
    if (!token) throw new ModelError('ValidationException', 'Invalid expression: ends too soon');
    return token;
  }

  #expect(text: string): void {
    const token = this.#next();
    if (token.text !== text) throw new ModelError('ValidationException', `Invalid expression: expected ${text}, got ${token.text}`);
  }

  #word(word: string): boolean {
    const token = this.#peek();
    if (token?.kind === 'word' && token.text.toUpperCase() === word) {
      this.#at++;
      return true;
    }
    return false;
  }

  #or(): Condition {
    let left = this.#and();
    while (this.#word('OR')) left = { kind: 'or', left, right: this.#and() };
    return left;
  }

  #and(): Condition {
    let left = this.#not();
    while (this.#word('AND')) left = { kind: 'and', left, right: this.#not() };
    return left;
  }

  #not(): Condition {
    if (this.#word('NOT')) return { kind: 'not', inner: this.#not() };
    return this.#primary();
  }

  #primary(): Condition {
    const token = this.#peek();
    if (token?.text === '(') {
      this.#at++;
      const inner = this.#or();
      this.#expect(')');
      return inner;
    }
    if (token?.kind === 'word' && (token.text === 'attribute_exists' || token.text === 'attribute_not_exists')) {
      this.#at++;
      this.#expect('(');
      const path = this.path();
      this.#expect(')');
      return { kind: token.text === 'attribute_exists' ? 'exists' : 'not_exists', path };
    }
    const left = this.#operand();
    const op = this.#next();
    if (op.kind !== 'op') throw new ModelError('ValidationException', `Invalid ConditionExpression: expected a comparison, got ${op.text}`);
    return { kind: 'compare', op: op.text, left, right: this.#operand() };
  }

  path(): string {
    const token = this.#next();
    if (token.kind === 'name') {
      const name = this.context.names[token.text];
      if (name === undefined) throw new ModelError('ValidationException', `An expression attribute name used in the document path is not defined; attribute name: ${token.text}`);
      return name;
    }
    if (token.kind === 'word') return token.text;
    throw new ModelError('ValidationException', `Invalid expression: expected an attribute, got ${token.text}`);
  }

  value(): AttributeValue {
    const token = this.#next();
    const value = token.kind === 'value' ? this.context.values[token.text] : undefined;
    if (value === undefined) throw new ModelError('ValidationException', `An expression attribute value used in expression is not defined; attribute value: ${token.text}`);
    return value;
  }

  #operand(): Operand {
    return this.#peek()?.kind === 'value' ? { value: this.value() } : { path: this.path() };
  }

  parseUpdate(): { set: [string, AttributeValue][]; remove: string[] } {
    const set: [string, AttributeValue][] = [];
    const remove: string[] = [];
    while (this.#at < this.tokens.length) {
      if (this.#word('SET')) {
        do {
          const path = this.path();
          this.#expect('=');
          set.push([path, this.value()]);
        } while (this.#peek()?.text === ',' && this.#next());
      } else if (this.#word('REMOVE')) {
        do remove.push(this.path());
        while (this.#peek()?.text === ',' && this.#next());
      } else {
        throw new ModelError('ValidationException', `Invalid UpdateExpression: unexpected ${this.#peek()?.text}`);
      }
    }
    return { set, remove };
  }
}

function compareValues(op: string, a: AttributeValue | undefined, b: AttributeValue | undefined): boolean {
  if (a === undefined || b === undefined) return op === '<>' ? a !== b : false;
  const type = (v: AttributeValue): string => Object.keys(v)[0]!;
  if (type(a) !== type(b)) return op === '<>';
  let order: number;
  if (a.N !== undefined && b.N !== undefined) order = Number(a.N) - Number(b.N);
  else if (a.S !== undefined && b.S !== undefined) order = a.S < b.S ? -1 : a.S > b.S ? 1 : 0;
  else order = JSON.stringify(a) === JSON.stringify(b) ? 0 : Number.NaN;
  switch (op) {
    case '=':
      return order === 0;
    case '<>':
      return order !== 0;
    case '<':
      return order < 0;
    case '<=':
      return order <= 0;
    case '>':
      return order > 0;
    default:
      return order >= 0;
  }
}

function holds(condition: Condition, item: Item | undefined): boolean {
  const valueOf = (operand: Operand): AttributeValue | undefined => ('value' in operand ? operand.value : item?.[operand.path]);
  switch (condition.kind) {
    case 'and':
      return holds(condition.left, item) && holds(condition.right, item);
    case 'or':
      return holds(condition.left, item) || holds(condition.right, item);
    case 'not':
      return !holds(condition.inner, item);
    case 'exists':
      return item?.[condition.path] !== undefined;
    case 'not_exists':
      return item?.[condition.path] === undefined;
    default:
      return compareValues(condition.op, valueOf(condition.left), valueOf(condition.right));
  }
}

/** DynamoDB's item size: attribute names and values in bytes (close enough to its own count for the 400 KB limit). */
export function itemBytes(item: Item): number {
  const size = (v: AttributeValue): number => {
    if (v.S !== undefined) return Buffer.byteLength(v.S);
    if (v.N !== undefined) return Math.ceil(v.N.length / 2) + 1;
    if (v.B !== undefined) return v.B.byteLength;
    if (v.BOOL !== undefined || v.NULL !== undefined) return 1;
    if (v.M !== undefined) return 3 + Object.entries(v.M).reduce((n, [k, x]) => n + Buffer.byteLength(k) + size(x) + 1, 0);
    if (v.L !== undefined) return 3 + v.L.reduce((n, x) => n + size(x) + 1, 0);
    if (v.SS !== undefined) return v.SS.reduce((n, s) => n + Buffer.byteLength(s), 0);
    return 0;
  };
  return Object.entries(item).reduce((n, [k, v]) => n + Buffer.byteLength(k) + size(v), 0);
}

/**
 * What the model stores and hands out is not copied: the HA store builds a
 * fresh input for every call and only reads what comes back (the model test
 * against dynalite copies its inputs itself).
 */
const copy = <T>(value: T): T => value;

// ── the table ──────────────────────────────────────────────────────────────

export interface WriteInput {
  TableName?: string;
  Item?: Item;
  Key?: Item;
  ConditionExpression?: string;
  UpdateExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Item;
  ReturnValuesOnConditionCheckFailure?: string;
}

/** What one applied write did, for whoever watches the table (the simulation's invariants). */
export interface AppliedWrite {
  op: 'put' | 'update' | 'delete';
  pk: string;
  before: Item | undefined;
  after: Item | undefined;
}

export class DynamoModel {
  readonly items = new Map<string, Item>();
  tableName: string | undefined;
  /** Called after every write that the table accepted. */
  onWrite: (write: AppliedWrite) => void = () => {};

  constructor(tableName?: string) {
    this.tableName = tableName;
  }

  #table(name: string | undefined): void {
    if (this.tableName === undefined || name !== this.tableName) throw new ModelError('ResourceNotFoundException', 'Requested resource not found');
  }

  #key(key: Item | undefined): string {
    const pk = key?.pk?.S;
    if (pk === undefined || Object.keys(key ?? {}).length !== 1) throw new ModelError('ValidationException', 'The provided key element does not match the schema');
    return pk;
  }

  #check(input: WriteInput, current: Item | undefined): void {
    if (input.ConditionExpression === undefined) return;
    const context = { names: input.ExpressionAttributeNames ?? {}, values: input.ExpressionAttributeValues ?? {} };
    const condition = new Parser(tokenize(input.ConditionExpression), context).parseCondition();
    if (!holds(condition, current)) {
      const error = new ModelError('ConditionalCheckFailedException', 'The conditional request failed');
      if (input.ReturnValuesOnConditionCheckFailure === 'ALL_OLD' && current) (error as ModelError & { Item?: Item }).Item = copy(current);
      throw error;
    }
  }

  #store(op: AppliedWrite['op'], pk: string, before: Item | undefined, after: Item | undefined): void {
    if (after !== undefined && itemBytes(after) > MAX_ITEM_BYTES) throw new ModelError('ValidationException', 'Item size has exceeded the maximum allowed size');
    const stored = after === undefined ? undefined : copy(after);
    if (stored === undefined) this.items.delete(pk);
    else this.items.set(pk, stored);
    // The watcher gets the stored items themselves: it reads, never writes.
    this.onWrite({ op, pk, before, after: stored });
  }

  getItem(input: { TableName?: string; Key?: Item }): { Item?: Item } {
    this.#table(input.TableName);
    const item = this.items.get(this.#key(input.Key));
    return item === undefined ? {} : { Item: copy(item) };
  }

  batchGetItem(input: { RequestItems?: Record<string, { Keys?: Item[] }> }): { Responses: Record<string, Item[]>; UnprocessedKeys: Record<string, never> } {
    const responses: Record<string, Item[]> = {};
    for (const [table, request] of Object.entries(input.RequestItems ?? {})) {
      this.#table(table);
      responses[table] = (request.Keys ?? []).flatMap((key) => {
        const item = this.items.get(this.#key(key));
        return item === undefined ? [] : [copy(item)];
      });
    }
    return { Responses: responses, UnprocessedKeys: {} };
  }

  putItem(input: WriteInput): Record<string, never> {
    this.#table(input.TableName);
    const pk = this.#key(input.Item?.pk ? { pk: input.Item.pk } : undefined);
    const before = this.items.get(pk);
    this.#check(input, before);
    this.#store('put', pk, before, input.Item);
    return {};
  }

  updateItem(input: WriteInput): Record<string, never> {
    this.#table(input.TableName);
    const pk = this.#key(input.Key);
    const before = this.items.get(pk);
    this.#check(input, before);
    const context = { names: input.ExpressionAttributeNames ?? {}, values: input.ExpressionAttributeValues ?? {} };
    const update = new Parser(tokenize(input.UpdateExpression ?? ''), context).parseUpdate();
    const after: Item = { ...(before ?? { pk: { S: pk } }) };
    for (const [path, value] of update.set) after[path] = copy(value);
    for (const path of update.remove) delete after[path];
    this.#store('update', pk, before, after);
    return {};
  }

  deleteItem(input: WriteInput): Record<string, never> {
    this.#table(input.TableName);
    const pk = this.#key(input.Key);
    const before = this.items.get(pk);
    this.#check(input, before);
    if (before !== undefined) this.#store('delete', pk, before, undefined);
    return {};
  }

  createTable(input: { TableName?: string }): { TableDescription: { TableName?: string; TableStatus: string } } {
    if (this.tableName !== undefined) throw new ModelError('ResourceInUseException', `Table already exists: ${input.TableName}`);
    this.tableName = input.TableName;
    return { TableDescription: { TableName: input.TableName, TableStatus: 'CREATING' } };
  }

  /**
   * One command, by the SDK class's name and its input: what a fake SDK
   * client's send() hands over. Throws the SDK's errors by name.
   */
  apply(commandName: string, input: unknown): unknown {
    const i = input as WriteInput & { RequestItems?: Record<string, { Keys?: Item[] }> };
    switch (commandName) {
      case 'GetItemCommand':
        return this.getItem(i);
      case 'BatchGetItemCommand':
        return this.batchGetItem(i);
      case 'PutItemCommand':
        return this.putItem(i);
      case 'UpdateItemCommand':
        return this.updateItem(i);
      case 'DeleteItemCommand':
        return this.deleteItem(i);
      case 'CreateTableCommand':
        return this.createTable(i);
      case 'DescribeTableCommand':
        this.#table(i.TableName);
        return { Table: { TableName: this.tableName, TableStatus: 'ACTIVE', KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }], AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }] } };
      default:
        throw new ModelError('UnknownOperationException', `the model does not implement ${commandName}`);
    }
  }
}
