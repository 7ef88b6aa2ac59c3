"""The ``sms:`` config block: which HTTP SMS provider sends the case code to a citizen
(docs/citizen.md#sms, docs/configuration.md#sms).

One model per provider, told apart by ``provider`` (a pydantic discriminated union), so
an error names the provider's own missing field (``sms.tencent.template_id: required``).
Kept apart from the senders (gateway/delivery/citizen/sms/) so that loading the config
imports no HTTP client. Credentials are ``SecretStr``: written ``${VAR}`` in the file.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, field_validator

# The values a template may use (the citizen sink fills them, gateway/delivery/citizen/).
SmsTemplateField = Literal["case_code", "lookup_url", "received_at"]
SmsProviderKind = Literal["generic", "aliyun", "tencent"]

_URL = r"^https?://[^\s?#]+$"
# A header name as RFC 9110 allows (a token), so a typo cannot split the request head.
_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
ALIYUN_ENDPOINT = "https://dysmsapi.aliyuncs.com/"
TENCENT_ENDPOINT = "https://sms.tencentcloudapi.com/"


def _no_line_breaks(value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise ValueError("must be one line")
    return value


def _case_code_only() -> list[SmsTemplateField]:
    return ["case_code"]


class _SmsBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(default=10.0, gt=0, le=120,
                             description="the whole request: connect, send, answer")


class GenericSmsConfig(_SmsBase):
    """A JSON webhook of one's own (an operator's SMS gateway, a message bus bridge):
    ``POST url`` with ``{"to", "text", "params", "reference"}``."""

    provider: Literal["generic"]
    url: str = Field(pattern=_URL)
    token: SecretStr | None = Field(default=None,
                                    description="${SMS_TOKEN}: sent as Authorization: Bearer")
    secret: SecretStr | None = Field(
        default=None, description="${SMS_SIGNING_SECRET}: X-Minsheng-Signature HMAC-SHA256")
    headers: dict[Annotated[str, Field(pattern=_HEADER_NAME)], SecretStr] = Field(
        default_factory=dict, description="extra headers, e.g. X-Api-Key: ${SMS_API_KEY}")

    @field_validator("token", "secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("headers")
    @classmethod
    def _one_line_values(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for item in value.values():
            _no_line_breaks(item.get_secret_value())
        return value


class AliyunSmsConfig(_SmsBase):
    """Alibaba Cloud SMS (Dysmsapi ``SendSms``, version 2017-05-25, signature v1).

    ``template_params``: the registered template's variable names → the value each
    takes; unset: every value by its own name (a template written with ``${case_code}``)."""

    provider: Literal["aliyun"]
    access_key_id: str = Field(min_length=1, max_length=128)
    access_key_secret: SecretStr = Field(description="${ALIYUN_SMS_ACCESS_KEY_SECRET}")
    sign_name: str = Field(min_length=1, max_length=64, description="the approved 签名")
    template_code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")
    template_params: dict[str, SmsTemplateField] | None = None
    region_id: str = Field(default="cn-hangzhou", pattern=r"^[a-z0-9-]{1,32}$")
    endpoint: str = Field(default=ALIYUN_ENDPOINT, pattern=_URL)

    @field_validator("access_key_id", "sign_name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return _no_line_breaks(value)


class TencentSmsConfig(_SmsBase):
    """Tencent Cloud SMS (``SendSms``, API 3.0, version 2021-01-11, TC3-HMAC-SHA256).

    ``template_params``: the values in the order of the template's ``{1}``, ``{2}``…"""

    provider: Literal["tencent"]
    secret_id: str = Field(min_length=1, max_length=128)
    secret_key: SecretStr = Field(description="${TENCENT_SMS_SECRET_KEY}")
    sms_sdk_app_id: str = Field(pattern=r"^[0-9]{1,20}$", description="SmsSdkAppId")
    sign_name: str = Field(min_length=1, max_length=64, description="the approved 签名")
    template_id: str = Field(pattern=r"^[0-9]{1,20}$")
    template_params: list[SmsTemplateField] = Field(
        default_factory=_case_code_only, max_length=10)
    region: str = Field(default="ap-guangzhou", pattern=r"^[a-z0-9-]{1,32}$")
    endpoint: str = Field(default=TENCENT_ENDPOINT, pattern=_URL)

    @field_validator("secret_id", "sign_name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return _no_line_breaks(value)


SmsConfig = Annotated[
    GenericSmsConfig | AliyunSmsConfig | TencentSmsConfig, Field(discriminator="provider")
]
_ADAPTER: TypeAdapter[SmsConfig] = TypeAdapter(SmsConfig)


def parse_sms_config(raw: Any) -> SmsConfig:
    """One ``sms:`` block on its own (tests, ``minsheng notify test``); the gateway's
    config reads it as ``GatewayConfig.sms``."""
    return _ADAPTER.validate_python(raw)
