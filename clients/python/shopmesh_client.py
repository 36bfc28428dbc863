#!/usr/bin/env python3
"""Calls a shopmesh mesh from Python with grpcio and protobuf alone.

The messages come from a FileDescriptorSet that `buf build` makes from the
contracts in proto/, read at run time: nothing is generated into this folder.
Every port serves TLS; the mesh's CA certificate is all a caller outside the
mesh needs. Each channel also checks that the server's certificate names the
service it meant to call (its DNS name `<service>`), as the SDK's `service`
option does.

What it does, in order: lists the catalog (public), signs up and signs in a
new customer, orders the first product with the customer's token, reads the
customer's orders from user-orders, and then shows what goes wrong on
purpose: an invalid order (INVALID_ARGUMENT naming the field), a call
without a token (UNAUTHENTICATED), a server that is not the service asked
for, and a plaintext channel to a TLS port (UNAVAILABLE). It prints one line
per step (one JSON object per line with --json) and exits 1 if any step did
not turn out as expected.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

try:
    import grpc
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
except ImportError as missing:
    sys.stderr.write(
        f"shopmesh_client: {missing}. Install grpcio and protobuf, e.g. "
        "apt-get install python3-grpcio python3-protobuf (Debian/Ubuntu, for /usr/bin/python3).\n"
    )
    sys.exit(2)

SERVICES = {
    "users": "shopmesh.users.v1.UsersService",
    "products": "shopmesh.products.v1.ProductsService",
    "orders": "shopmesh.orders.v1.OrdersService",
    "user-orders": "shopmesh.userorders.v1.UserOrdersService",
}

# Long enough for a first TLS handshake on a loaded machine; short enough
# that a server that does not answer fails the step rather than the run.
CALL_TIMEOUT_S = 10.0


class Contracts:
    """The mesh's services and messages, from a FileDescriptorSet."""

    def __init__(self, serialized: bytes) -> None:
        files = descriptor_pb2.FileDescriptorSet.FromString(serialized)
        self.pool = descriptor_pool.DescriptorPool()
        # buf lists every file after the files it imports, so each Add finds its dependencies.
        for file in files.file:
            self.pool.Add(file)
        # GetMessageClass arrived in protobuf 4.22; Debian's 3.21 (Python 4.21) has only the factory.
        get_class = getattr(message_factory, "GetMessageClass", None)
        if get_class is None:
            factory = message_factory.MessageFactory(self.pool)
            get_class = factory.GetPrototype
        self._class_of = get_class

    def method(self, service: str, name: str) -> tuple[str, Any, Any]:
        """The call path and the request and response classes of `service`'s method `name`."""
        found = self.pool.FindServiceByName(SERVICES[service]).FindMethodByName(name)
        if found.client_streaming or found.server_streaming:
            raise ValueError(f"{service}.{name} is a streaming method; this client makes unary calls only")
        path = f"/{found.containing_service.full_name}/{found.name}"
        return path, self._class_of(found.input_type), self._class_of(found.output_type)


class Mesh:
    """One TLS channel per service, each checking that the certificate names that service."""

    def __init__(self, contracts: Contracts, addresses: dict[str, str], ca: bytes) -> None:
        self.contracts = contracts
        self.addresses = addresses
        self.credentials = grpc.ssl_channel_credentials(root_certificates=ca)
        # One channel per address and expected name, kept for every call: one TLS handshake, not one per call.
        self.channels: dict[tuple[str, str], grpc.Channel] = {}

    def channel(self, service: str, expect: str | None = None) -> grpc.Channel:
        """A channel to `service`'s address whose certificate must name `expect` (default: that service)."""
        key = (self.addresses[service], expect or service)
        if key not in self.channels:
            # The certificates name 127.0.0.1 and localhost too, so a plain connection would verify; naming
            # the service instead makes the check say which service answered.
            options = [("grpc.ssl_target_name_override", key[1])]
            self.channels[key] = grpc.secure_channel(key[0], self.credentials, options=options)
        return self.channels[key]

    def call(
        self,
        service: str,
        method: str,
        token: str | None = None,
        channel: grpc.Channel | None = None,
        **fields: Any,
    ) -> Any:
        path, request_class, response_class = self.contracts.method(service, method)
        stub = (channel or self.channel(service)).unary_unary(
            path,
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        metadata = [("authorization", f"Bearer {token}")] if token else None
        return stub(request_class(**fields), timeout=CALL_TIMEOUT_S, metadata=metadata)

    def close(self) -> None:
        for made in self.channels.values():
            made.close()


@dataclass
class Report:
    json_lines: bool
    failed: int = 0
    steps: list[str] = field(default_factory=list)

    def step(self, name: str, ok: bool, summary: str, **facts: Any) -> None:
        self.steps.append(name)
        if not ok:
            self.failed += 1
        if self.json_lines:
            print(json.dumps({"step": name, "ok": ok, "summary": summary, **facts}), flush=True)
        else:
            print(f"{'ok  ' if ok else 'FAIL'} {name:<16} {summary}", flush=True)


def counted(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def enum_name(message: Any, field_name: str) -> str:
    """The name of an enum field's value, e.g. DEPENDENCY_PRODUCTS."""
    enum = message.DESCRIPTOR.fields_by_name[field_name].enum_type
    value = enum.values_by_number.get(getattr(message, field_name))
    return value.name if value else str(getattr(message, field_name))


def status_of(error: grpc.RpcError) -> tuple[str, str]:
    """The status code's name and the message of a failed call."""
    if isinstance(error, grpc.Call):
        return error.code().name, error.details() or ""
    return "UNKNOWN", str(error)


def expect_failure(
    report: Report,
    name: str,
    expected_code: str,
    call: Callable[[], Any],
    check: Callable[[str], bool],
    wanted: str,
) -> None:
    """Runs a call that must fail with `expected_code` and a message that passes `check`."""
    try:
        call()
    except grpc.RpcError as error:
        code, message = status_of(error)
        ok = code == expected_code and check(message)
        summary = f"{code}: {message}" if ok else f"expected {expected_code} ({wanted}), got {code}: {message}"
        report.step(name, ok, summary, code=code, message=message)
        return
    report.step(name, False, f"expected {expected_code} ({wanted}), but the call succeeded", code="OK", message="")


def run(mesh: Mesh, report: Report) -> None:
    products = mesh.call("products", "ListProducts", page_size=5).products
    report.step(
        "list-products",
        True,
        f"{counted(len(products), 'product')}, first: {products[0].name if products else '(none)'}",
        count=len(products),
        first_product_id=products[0].id if products else None,
    )

    email = f"python-{uuid.uuid4().hex[:12]}@example.com"
    password = "a long python password"
    signed_up = mesh.call("users", "SignUp", email=email, password=password, display_name="Python client")
    user_id = signed_up.user.id
    report.step("sign-up", bool(user_id), f"user {user_id} ({email})", user_id=user_id)

    token = mesh.call("users", "SignIn", email=email, password=password).session.access_token
    report.step("sign-in", bool(token), f"a token of {len(token)} characters", token_length=len(token))

    ordered_product = None
    if products:
        ordered_product = products[0].id
        order = mesh.call(
            "orders",
            "CreateOrder",
            token=token,
            request_id=str(uuid.uuid4()),
            items=[{"product_id": ordered_product, "quantity": 2}],
        ).order
        total = f"{order.total.minor_units} {order.total.currency_code}" if order.HasField("total") else "no total"
        report.step(
            "create-order",
            bool(order.id) and order.user_id == user_id,
            f"order {order.id}, {counted(len(order.lines), 'line')}, total {total} (minor units)",
            order_id=order.id,
            lines=len(order.lines),
        )

    view = mesh.call("user-orders", "GetUserOrders", token=token, user_id=user_id)
    names = [line.product.name for o in view.orders for line in o.lines if line.HasField("product")]
    wanted_orders = 1 if ordered_product else 0
    report.step(
        "get-user-orders",
        len(view.orders) == wanted_orders and len(view.degradations) == 0,
        f"{counted(len(view.orders), 'order')} for {view.profile.display_name or user_id}"
        + (f" ({', '.join(names)})" if names else "")
        + (f"; degraded: {', '.join(enum_name(d, 'dependency') for d in view.degradations)}" if view.degradations else ""),
        orders=len(view.orders),
        product_names=names,
        degradations=len(view.degradations),
    )

    expect_failure(
        report,
        "invalid-argument",
        "INVALID_ARGUMENT",
        lambda: mesh.call(
            "orders",
            "CreateOrder",
            token=token,
            request_id=str(uuid.uuid4()),
            items=[{"product_id": ordered_product or str(uuid.uuid4()), "quantity": 0}],
        ),
        lambda message: message.startswith("items[0].quantity:"),
        "a message naming items[0].quantity",
    )

    expect_failure(
        report,
        "no-token",
        "UNAUTHENTICATED",
        lambda: mesh.call("user-orders", "GetUserOrders", user_id=user_id),
        lambda message: message != "",
        "a message",
    )

    # users' certificate is good (same CA) but does not name products: the handshake is refused.
    expect_failure(
        report,
        "wrong-service",
        "UNAVAILABLE",
        lambda: mesh.call("products", "ListProducts", channel=mesh.channel("users", expect="products"), page_size=1),
        lambda message: message != "",
        "a TLS handshake that fails",
    )

    plaintext = grpc.insecure_channel(mesh.addresses["products"])
    try:
        expect_failure(
            report,
            "plaintext",
            "UNAVAILABLE",
            lambda: mesh.call("products", "ListProducts", channel=plaintext, page_size=1),
            lambda message: message != "",
            "a TLS port refusing plaintext",
        )
    finally:
        plaintext.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description="Calls a shopmesh mesh over TLS with grpcio, from the contracts' FileDescriptorSet."
    )
    parser.add_argument(
        "--descriptors",
        required=True,
        help="a FileDescriptorSet of the contracts (npx @bufbuild/buf build --as-file-descriptor-set -o FILE); - reads stdin",
    )
    parser.add_argument("--ca", required=True, help="the mesh's CA certificate, PEM (npm start: data/tls/ca.pem)")
    defaults = {"users": 50051, "products": 50052, "orders": 50053, "user-orders": 50054}
    for service, port in defaults.items():
        parser.add_argument(f"--{service}", default=f"127.0.0.1:{port}", help=f"{service}'s address (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per step")
    args = parser.parse_args(argv)

    serialized = sys.stdin.buffer.read() if args.descriptors == "-" else open(args.descriptors, "rb").read()
    with open(args.ca, "rb") as ca_file:
        ca = ca_file.read()
    addresses = {service: getattr(args, service.replace("-", "_")) for service in SERVICES}
    report = Report(json_lines=args.json)
    mesh = Mesh(Contracts(serialized), addresses, ca)
    try:
        run(mesh, report)
    except grpc.RpcError as error:
        code, message = status_of(error)
        report.step("unexpected-error", False, f"{code}: {message}", code=code, message=message)
    finally:
        mesh.close()
    if args.json:
        summary = {"step": "summary", "ok": report.failed == 0, "steps": len(report.steps), "failed": report.failed}
        print(json.dumps(summary))
    else:
        print(f"{len(report.steps) - report.failed} of {len(report.steps)} steps as expected (grpcio {grpc.__version__})")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
